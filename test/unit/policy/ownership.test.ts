// Who owns what in a policy set (src/policy/ownership.ts): a new revision never takes a claim a served one
// holds; new revisions that clash are all refused, whatever order they were read in; issuers clash only on
// their key source. Columns are counted from the fixture's `extra` line 11.
import { describe, expect, it } from 'vitest';
import { formatProblem, parsePolicy } from '../../../src/policy/index.js';
import { admit, type Contender } from '../../../src/policy/ownership.js';
import { LIST_ROUTE, policy } from './fixtures.js';

function contender(file: string, extra: string, text = policy(extra, LIST_ROUTE)): Contender {
  const result = parsePolicy(text, file);
  if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
  return { file, policy: result.policy };
}

const refusals = (admission: ReturnType<typeof admit>) =>
  Object.fromEntries([...admission.refused].map(([file, problems]) => [file, problems.map(formatProblem)]));

describe('admit', () => {
  it('policies that claim different things are all admitted', () => {
    const a = contender('a.yaml', 'match: { hosts: [a.example.com, "*.example.com"], default: true }\n');
    const b = contender(
      'b.yaml',
      'match: { hosts: [b.example.com], destinationPrincipals: [spiffe://td/b] }\n',
    );
    const admission = admit([a, b], []);
    expect(admission.admitted).toEqual([a, b]);
    expect(admission.refused.size).toBe(0);
  });

  it('a new revision of the same file may keep its own claims', () => {
    const served = contender('a.yaml', 'match: { hosts: [a.example.com] }\n');
    const next = contender('a.yaml', 'match: { hosts: [a.example.com, a2.example.com] }\n');
    expect(admit([next], [served]).admitted).toEqual([next]);
  });

  it('a claim a served policy holds stays with it: the new revision is refused, naming both places', () => {
    const served = contender('a.yaml', 'match: { hosts: [shared.example.com] }\n');
    const next = contender(
      'b.yaml',
      'match: { destinationPrincipals: [spiffe://td/b], hosts: [shared.example.com] }\n',
    );
    expect(refusals(admit([next], [served]))).toEqual({
      'b.yaml': [
        'b.yaml:11:58: match.hosts[0]: host "shared.example.com" belongs to a.yaml:11:18 (policy "a"), which keeps it; a request belongs to one policy',
      ],
    });
  });

  it('new revisions that clash are all refused, in either order', () => {
    const a = contender('a.yaml', 'match: { destinationPrincipals: [spiffe://td/x] }\n');
    const b = contender('b.yaml', 'match: { destinationPrincipals: [spiffe://td/x] }\n');
    const c = contender('c.yaml', '');
    for (const order of [
      [a, b, c],
      [b, c, a],
    ]) {
      const admission = admit(order, []);
      expect(admission.admitted).toEqual([c]);
      expect(refusals(admission)).toEqual({
        'a.yaml': [
          'a.yaml:11:34: match.destinationPrincipals[0]: destination principal "spiffe://td/x" is also claimed by b.yaml:11:34 (policy "b"); a request belongs to one policy',
        ],
        'b.yaml': [
          'b.yaml:11:34: match.destinationPrincipals[0]: destination principal "spiffe://td/x" is also claimed by a.yaml:11:34 (policy "a"); a request belongs to one policy',
        ],
      });
    }
  });

  it('two defaults, or one name in two files, clash', () => {
    const a = contender('a.yaml', 'match: { default: true }\n');
    const b = contender('b.yaml', 'name: a\nmatch: { default: true }\n');
    expect(refusals(admit([b], [a]))).toEqual({
      'b.yaml': [
        'b.yaml:11:7: name: policy name "a" is taken by a.yaml:1:1 (policy "a"); each policy needs its own name',
        'b.yaml:12:19: match.default: a.yaml:11:19 (policy "a") is the default policy already; at most one policy may be the default',
      ],
    });
  });

  it('an exact host and a wildcard over it do not clash: the exact name wins for its host', () => {
    const a = contender('a.yaml', 'match: { hosts: ["*.example.com"] }\n');
    const b = contender('b.yaml', 'match: { hosts: [b.example.com] }\n');
    expect(admit([a, b], []).refused.size).toBe(0);
  });

  it('many policies may trust one issuer with one key source, but not with two', () => {
    const a = contender('a.yaml', '');
    const same = contender('b.yaml', '');
    expect(admit([same], [a]).admitted).toEqual([same]);
    const other = contender(
      'c.yaml',
      '',
      policy('', LIST_ROUTE).replace(
        'jwks: { uri: https://idp.example.com/jwks.json }',
        'jwks: { file: ./jwks.json }',
      ),
    );
    expect(refusals(admit([other], [a]))).toEqual({
      'c.yaml': [
        'c.yaml:6:13: authentication.issuers[0].jwks: issuer "https://idp.example.com/" gets its keys from another JWKS in a.yaml:6:13 (policy "a"); an issuer has one key source in a policy set',
      ],
    });
  });

  it('new revisions of many files trusting one issuer with one key source are all admitted; one more source refuses them all', () => {
    const many = Array.from({ length: 200 }, (_, i) =>
      contender(`s${i}.yaml`, `match: { hosts: [s${i}.example.com] }\n`),
    );
    const admission = admit(many, []);
    expect(admission.admitted).toEqual(many);
    expect(admission.refused.size).toBe(0);

    const other = contender(
      'z.yaml',
      '',
      policy('', LIST_ROUTE).replace(
        'jwks: { uri: https://idp.example.com/jwks.json }',
        'jwks: { file: ./jwks.json }',
      ),
    );
    const [a, b] = many;
    expect(refusals(admit([a!, b!, other], []))).toEqual({
      's0.yaml': [
        's0.yaml:6:13: authentication.issuers[0].jwks: issuer "https://idp.example.com/" gets its keys from another JWKS in z.yaml:6:13 (policy "z"); an issuer has one key source in a policy set',
      ],
      's1.yaml': [
        's1.yaml:6:13: authentication.issuers[0].jwks: issuer "https://idp.example.com/" gets its keys from another JWKS in z.yaml:6:13 (policy "z"); an issuer has one key source in a policy set',
      ],
      'z.yaml': [
        'z.yaml:6:13: authentication.issuers[0].jwks: issuer "https://idp.example.com/" gets its keys from another JWKS in s0.yaml:6:13 (policy "s0"); an issuer has one key source in a policy set',
        'z.yaml:6:13: authentication.issuers[0].jwks: issuer "https://idp.example.com/" gets its keys from another JWKS in s1.yaml:6:13 (policy "s1"); an issuer has one key source in a policy set',
      ],
    });
  });
});
