// Kept answers must be the very bytes protobufjs would write for the same CheckResponse: Envoy reads these
// bytes, so a splice that miscounts a length or drops a field would deny (or allow) the wrong way.
import { describe, expect, it } from 'vitest';
import { type ResponseContext, toCheckResponse } from '../../../src/response/encode.js';
import {
  decodeAnswer,
  EncodedAnswer,
  keptAllow,
  keptDeny,
  serializeAnswer,
} from '../../../src/response/kept.js';
import type { Decision, KeptAnswer, Reason } from '../../../src/vocabulary/index.js';
import { authorizationService } from '../../../src/wire/proto.js';

const encode = authorizationService.Check.responseSerialize;
const decode = authorizationService.Check.responseDeserialize;

const decision = (reason: Reason, more: Partial<Decision> = {}): Decision =>
  Object.freeze({ reason, detail: `detail for ${reason}`, revision: 'rev-1', ...more });
const context = (requestId: string, more: Partial<ResponseContext> = {}) => ({
  requestId,
  realm: 'inventory',
  requestHeaderNames: [] as string[],
  hints: false,
  ...more,
});
const build = (d: Decision, c: ResponseContext) => (id: string) =>
  toCheckResponse(d, { ...c, requestId: id });

const denies: Decision[] = [
  decision('scope_missing', {
    route: 'create_transaction',
    subject: 'svc-inventory-sync',
    client: 'inventory-sync',
    missing: { scopes: ['inventory.read'], permissions: ['transactions:write'] },
  }),
  decision('location_denied', { route: 'list_items', subject: 'svc', missing: { locations: ['WH03'] } }),
  decision('token_expired'),
  // Bodies past 127 and 16,383 bytes take two- and three-byte length varints; non-ASCII takes UTF-8 bytes.
  decision('role_missing', { route: 'r', subject: 's', detail: `needs role ${'x'.repeat(200)}` }),
  decision('role_missing', { route: 'r', subject: 's', detail: `needs ${'ü'.repeat(9000)} and 🔑` }),
];
const requestIds = ['r1', '0f8fad5b-d9cb-469f-a165-70867728950e', 'a'.repeat(128), ''];

describe('kept answers: denies', () => {
  it('sends the bytes protobufjs would encode for toCheckResponse, for every request id', () => {
    for (const d of denies) {
      const kept: KeptAnswer = {};
      for (const id of requestIds) {
        const c = context(id);
        const expected = encode(toCheckResponse(d, c));
        const answer = keptDeny(kept, c, build(d, c));
        expect(answer, `${d.reason} ${id}`).toBeInstanceOf(EncodedAnswer);
        expect(Buffer.compare(serializeAnswer(answer), expected), `${d.reason} request id ${id}`).toBe(0);
        expect(decodeAnswer(answer)).toEqual(decode(expected));
      }
    }
  });

  it('builds the template once per decision, then only the body changes', () => {
    const d = denies[0]!;
    const kept: KeptAnswer = {};
    let builds = 0;
    const counting = (c: ResponseContext) => (id: string) => {
      builds++;
      return build(d, c)(id);
    };
    for (const id of requestIds) keptDeny(kept, context(id), counting(context(id)));
    expect(builds).toBe(1);
    const answer = decodeAnswer(keptDeny(kept, context('req-9'), counting(context('req-9'))));
    expect(JSON.parse(answer.denied_response!.body!).request_id).toBe('req-9');
  });

  it('follows a new realm or hint setting instead of answering with the old one', () => {
    const d = denies[0]!;
    const kept: KeptAnswer = {};
    keptDeny(kept, context('r1'), build(d, context('r1')));
    for (const c of [context('r2', { realm: 'other realm' }), context('r3', { hints: true })]) {
      const answer = keptDeny(kept, c, build(d, c));
      expect(Buffer.compare(serializeAnswer(answer), encode(toCheckResponse(d, c)))).toBe(0);
    }
  });

  it('an answer it did not encode is encoded as usual, and decoded as a client reads it', () => {
    const response = toCheckResponse(denies[1]!, context('r1'));
    expect(Buffer.compare(serializeAnswer(response), encode(response))).toBe(0);
    expect(decodeAnswer(response)).toEqual(decode(encode(response)));
  });
});

describe('kept answers: allows', () => {
  it('one encoded answer per decision, built once', () => {
    const d = decision('allowed', { route: 'list_transactions', subject: 'svc', client: 'c' });
    const kept: KeptAnswer = {};
    let builds = 0;
    const answer = () =>
      keptAllow(kept, () => {
        builds++;
        return toCheckResponse(d, context('r1'));
      });
    const first = answer();
    expect(answer()).toBe(first);
    expect(builds).toBe(1);
    expect(Buffer.compare(serializeAnswer(first), encode(toCheckResponse(d, context('r2'))))).toBe(0);
    // Its own memory, not a slice of Node's 8 KiB buffer pool (which a kept slice would pin whole).
    expect(first.bytes.buffer.byteLength).toBe(first.bytes.length);
  });
});
