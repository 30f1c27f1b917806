// `explain --claims FILE`: the claims file is read like every file a person gives scopegate, capped and
// strictly UTF-8, and a file that cannot be used is a usage error (exit 2) that says why, never its content.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { explainCommand, MAX_CLAIMS_BYTES } from '../../../src/explain/command.js';
import { JWT_AUTHN_ONLY_POLICY_TEXT } from '../../support/policies.js';

const dir = mkdtempSync(join(tmpdir(), 'scopegate-claims-'));

/** The usage message explain gives for `--claims file` (before any policy is read). */
async function usageFor(file: string): Promise<{ code: number; messages: string[] }> {
  const messages: string[] = [];
  const code = await explainCommand(
    ['--policy', join(dir, 'not-read.yaml'), '--claims', file, '--path', '/x'],
    {
      out: () => {},
      err: (text) => messages.push(text),
      usage: (message) => {
        messages.push(message);
        return 2;
      },
    },
  );
  return { code, messages };
}

describe('explain --claims FILE', () => {
  test('a missing file names the system error and what to give instead', async () => {
    expect(await usageFor(join(dir, 'nope.json'))).toEqual({
      code: 2,
      messages: ['--claims: cannot read the file (ENOENT); give a file or inline JSON'],
    });
  });

  test('a file over the cap is refused', async () => {
    const file = join(dir, 'big.json');
    writeFileSync(file, `{"sub":"${'x'.repeat(MAX_CLAIMS_BYTES)}"}`);
    expect(await usageFor(file)).toEqual({
      code: 2,
      messages: [`--claims file is larger than ${MAX_CLAIMS_BYTES} bytes`],
    });
  });

  test('a file that is not UTF-8 is refused, not read with replacement characters', async () => {
    const file = join(dir, 'latin1.json');
    writeFileSync(file, Buffer.from('{"sub":"jos\xe9"}', 'latin1'));
    expect(await usageFor(file)).toEqual({ code: 2, messages: ['--claims file is not valid UTF-8'] });
  });

  test('a file that is not a JSON object says so', async () => {
    const file = join(dir, 'list.json');
    writeFileSync(file, '[1, 2]');
    expect(await usageFor(file)).toEqual({ code: 2, messages: ['--claims must be a JSON object of claims'] });
  });
});

/** `explain` as the command line runs it: the exit code, and what it printed on stdout and stderr. */
async function explain(args: string[]): Promise<{ code: number; out: string; err: string[] }> {
  let out = '';
  const err: string[] = [];
  const code = await explainCommand(args, {
    out: (text) => {
      out += text;
    },
    err: (text) => err.push(text),
    usage: (message) => {
      err.push(message);
      return 2;
    },
  });
  return { code, out, err };
}

const MESH = join(import.meta.dirname, '../../../examples/mesh');
const dispatcher = JSON.stringify({
  sub: 'svc-dispatch',
  client_id: 'dispatch',
  gty: 'client_credentials',
  scope: 'shipments.write',
});

describe('explain --policy DIR', () => {
  test('chooses the policy as the server would and says which one and why', async () => {
    const byHost = await explain([
      ...['--policy', MESH, '--claims', dispatcher, '--method', 'DELETE', '--path', '/api/shipments/S1'],
      ...['--host', 'shipments.example.com'],
    ]);
    expect(byHost.code).toBe(0);
    expect(byHost.out).toMatch(
      /^policy {6}shipments: .*examples\/mesh\/shipments\.yaml \(revision [0-9a-f]{12}\)\n {12}chosen by the host\n/,
    );

    const byExtension = await explain([
      ...['--policy', MESH, '--claims', dispatcher, '--method', 'DELETE', '--path', '/api/shipments/S1'],
      ...['--host', 'shipments.example.com', '--context-extension', 'scopegate_policy=inventory', '--json'],
    ]);
    // inventory has no such route: the extension decided, not the host.
    expect(byExtension.code).toBe(1);
    expect(JSON.parse(byExtension.out)).toMatchObject({
      policy: { chosen: true, name: 'inventory', chosenBy: 'context extension' },
      reason: 'route_unknown',
    });

    const byPrincipal = await explain([
      ...['--policy', MESH, '--claims', dispatcher, '--path', '/api/shipments', '--json'],
      ...['--destination-principal', 'spiffe://cluster.local/ns/shipments/sa/shipments'],
    ]);
    expect(JSON.parse(byPrincipal.out).policy).toMatchObject({
      name: 'shipments',
      chosenBy: 'destination principal',
    });
  });

  test('a request no policy owns is explained as the 403 policy_unknown it gets, with the fix', async () => {
    const { code, out } = await explain([
      ...[
        '--policy',
        MESH,
        '--claims',
        dispatcher,
        '--path',
        '/api/shipments',
        '--host',
        'orders.example.com',
      ],
    ]);
    expect(code).toBe(1);
    expect(out).toContain(
      'policy      ✗ none: no policy owns host "orders.example.com" (by context extension, destination principal or host)',
    );
    expect(out).toContain('decision    DENY policy_unknown (HTTP 403)');
    expect(out).toContain('fix         give this service a policy');
  });

  test('a directory that would not be served as a whole is refused with every problem, located', async () => {
    const broken = mkdtempSync(join(tmpdir(), 'scopegate-explain-set-'));
    writeFileSync(join(broken, 'a.yaml'), 'version: 1\n');
    const { code, err } = await explain(['--policy', broken, '--claims', dispatcher, '--path', '/x']);
    expect(code).toBe(2);
    expect(err[0]).toMatch(/a\.yaml:1:1: authentication: required key "authentication" is missing/);
    const malformed = await explain([
      ...[
        '--policy',
        MESH,
        '--claims',
        dispatcher,
        '--path',
        '/x',
        '--context-extension',
        'scopegate_policy',
      ],
    ]);
    expect(malformed).toMatchObject({
      code: 2,
      err: [expect.stringMatching(/^--context-extension expects key=value/)],
    });
  });
});

describe('explain without a credential', () => {
  const INVENTORY = join(import.meta.dirname, '../../../examples/inventory/policy.yaml');
  const REPORTS = 'spiffe://cluster.local/ns/reporting/sa/reports';

  test('a peer-only route needs none: the peer decides', async () => {
    const allowed = await explain([
      ...['--policy', INVENTORY, '--path', '/api/inventory/reports/stock', '--peer', REPORTS, '--json'],
    ]);
    expect(allowed.code).toBe(0);
    expect(JSON.parse(allowed.out)).toMatchObject({ decision: 'allow', route: { name: 'stock_report' } });
    const plaintext = await explain(['--policy', INVENTORY, '--path', '/api/inventory/reports/stock']);
    expect(plaintext.code).toBe(1);
    expect(plaintext.out).toContain('DENY peer_missing (HTTP 403)');
  });

  test('a token route says what a request without one gets', async () => {
    const { code, out } = await explain(['--policy', INVENTORY, '--path', '/api/inventory/transactions']);
    expect(code).toBe(1);
    expect(out).toContain('DENY token_missing (HTTP 401)');
  });

  test('a token in --header authorization is refused, not read unverified as if none were given', async () => {
    const { code, err } = await explain([
      ...[
        '--policy',
        INVENTORY,
        '--path',
        '/api/inventory/transactions',
        '--header',
        'Authorization: Bearer a.b.c',
      ],
    ]);
    expect(code).toBe(2);
    expect(err).toEqual(['give the token with --token JWT, not --header authorization']);
  });

  test('both a token and claims is a usage error', async () => {
    const { code, err } = await explain([
      ...['--policy', INVENTORY, '--path', '/x', '--token', 'a.b.c', '--claims', '{}'],
    ]);
    expect(code).toBe(2);
    expect(err).toEqual(['explain takes one of --token JWT or --claims FILE_OR_JSON, not both']);
  });
});

describe('explain --door: the request judged as an HTTP front door judges it', () => {
  // The mesh without destination principals: over HTTP, each policy is chosen by its host. Files are read
  // and written, never copied: the mesh's inventory.yaml is a link to the example policy.
  const byHost = mkdtempSync(join(tmpdir(), 'scopegate-explain-door-'));
  const policyText = (file: string) =>
    readFileSync(join(MESH, file), 'utf8').replace(/^ {2}destinationPrincipals: .*\n/m, '');
  for (const file of ['inventory.yaml', 'shipments.yaml'])
    writeFileSync(join(byHost, file), policyText(file));
  // And a policy only Envoy's context extension can name: no HTTP request could reach it.
  const named = mkdtempSync(join(tmpdir(), 'scopegate-explain-door-'));
  for (const file of ['inventory.yaml', 'shipments.yaml']) writeFileSync(join(named, file), policyText(file));
  writeFileSync(
    join(named, 'orders.yaml'),
    policyText('shipments.yaml')
      .replace(/^name: shipments$/m, 'name: orders')
      .replace(/^match:\n {2}hosts: .*\n/m, ''),
  );
  const deleteShipment = ['--claims', dispatcher, '--method', 'DELETE', '--path', '/api/shipments/S1'];

  test('a policy only a context extension names: --door http gets the server’s policy_unknown, gRPC picks it', async () => {
    const refusal =
      "this policy set has policies only Envoy's context extension can name (orders), which the HTTP front door cannot carry: give them match.hosts, or use the gRPC front door";
    const http = await explain([
      ...['--policy', named, ...deleteShipment, '--host', 'shipments.example.com', '--door', 'http'],
    ]);
    expect(http.code).toBe(1);
    expect(http.out.split('\n').slice(0, 2)).toEqual([
      'door        http (serve --http): chooses the policy by host or default; carries no peer, destination principal or context extension',
      `policy      ✗ none: ${refusal}`,
    ]);
    expect(http.out).toContain('decision    DENY policy_unknown (HTTP 403)');
    const json = await explain([
      ...[
        '--policy',
        named,
        ...deleteShipment,
        '--host',
        'shipments.example.com',
        '--door',
        'http',
        '--json',
      ],
    ]);
    expect(JSON.parse(json.out)).toMatchObject({
      door: 'http',
      policy: { chosen: false, detail: refusal },
      reason: 'policy_unknown',
      detail: refusal,
    });

    const grpc = await explain([
      ...['--policy', named, ...deleteShipment, '--context-extension', 'scopegate_policy=orders', '--json'],
    ]);
    expect(grpc.code).toBe(0);
    expect(JSON.parse(grpc.out)).toMatchObject({
      door: 'grpc',
      policy: { chosen: true, name: 'orders', chosenBy: 'context extension' },
      decision: 'allow',
    });
  });

  test('a set chosen by host: both HTTP doors choose by the host, and say which door was asked', async () => {
    for (const [door, transport] of [
      ['http', 'http'],
      ['forward-auth', 'forward_auth'],
    ]) {
      const { code, out } = await explain([
        ...['--policy', byHost, ...deleteShipment, '--host', 'shipments.example.com', '--door', door!],
        '--json',
      ]);
      expect(code).toBe(0);
      expect(JSON.parse(out)).toMatchObject({
        door: transport,
        policy: { chosen: true, name: 'shipments', chosenBy: 'host' },
        decision: 'allow',
      });
    }
    const text = await explain([
      ...['--policy', byHost, ...deleteShipment, '--host', 'shipments.example.com', '--door', 'forward-auth'],
    ]);
    expect(text.out).toMatch(
      /^door {8}forward-auth \(serve --forward-auth\): .* or body\npolicy {6}shipments: /,
    );
    // The default door says nothing of doors in text: the output it always gave.
    const grpc = await explain([
      ...['--policy', byHost, ...deleteShipment, '--host', 'shipments.example.com'],
    ]);
    expect(grpc.out).toMatch(/^policy {6}shipments: /);
    expect(grpc.out).not.toMatch(/^door/m);
  });

  test('a peer route at the HTTP door is the server’s peer_missing, whatever the policy lists', async () => {
    const INVENTORY = join(import.meta.dirname, '../../../examples/inventory/policy.yaml');
    const { code, out } = await explain([
      ...['--policy', INVENTORY, '--path', '/api/inventory/reports/stock', '--door', 'http', '--json'],
    ]);
    expect(code).toBe(1);
    expect(JSON.parse(out)).toMatchObject({
      door: 'http',
      reason: 'peer_missing',
      detail:
        "this route needs the calling workload's identity (mTLS), which the HTTP front door cannot carry: use the gRPC front door",
      peer: { ok: false, reason: 'peer_missing' },
    });
  });

  test('a policy trusting only Envoy’s jwt_authn: its claims reach the gRPC door only', async () => {
    const policy = join(mkdtempSync(join(tmpdir(), 'scopegate-explain-door-')), 'jwt-authn.yaml');
    writeFileSync(policy, JWT_AUTHN_ONLY_POLICY_TEXT);
    const claims = { sub: 'svc', scope: 'inventory.read', exp: Math.floor(Date.now() / 1000) + 600 };
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const token = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims)}.c2ln`;
    for (const given of [
      ['--claims', JSON.stringify(claims)],
      ['--token', token, '--no-verify'],
    ]) {
      const asked = ['--policy', policy, ...given, '--path', '/api/inventory/transactions', '--json'];
      expect(JSON.parse((await explain(asked)).out)).toMatchObject({ decision: 'allow' });
      expect(JSON.parse((await explain([...asked, '--door', 'http'])).out)).toMatchObject({
        door: 'http',
        reason: 'token_invalid',
        detail: "the token was not verified by Envoy's jwt_authn filter",
      });
    }
  });

  test('what the door cannot carry is a usage error naming the option and the door, never dropped', async () => {
    const asked = ['--policy', MESH, ...deleteShipment];
    expect(await explain([...asked, '--door', 'http', '--peer', 'spiffe://cluster.local/ns/a/sa/b'])).toEqual(
      {
        code: 2,
        out: '',
        err: [
          "--peer: --door http never carries the calling workload's identity (mTLS peer): leave it out, or use --door grpc",
        ],
      },
    );
    expect(
      await explain([...asked, '--door', 'forward-auth', '--context-extension', 'scopegate_policy=x']),
    ).toMatchObject({
      code: 2,
      err: [
        "--context-extension: --door forward-auth never carries Envoy's context extensions: leave it out, or use --door grpc",
      ],
    });
    expect(
      await explain([...asked, '--door', 'http', '--destination-principal', 'spiffe://a/b']),
    ).toMatchObject({
      code: 2,
      err: [expect.stringMatching(/^--destination-principal: --door http never carries/)],
    });
    expect(await explain([...asked, '--door', 'forward-auth', '--body', '{}'])).toMatchObject({
      code: 2,
      err: [
        '--body: --door forward-auth never carries a body: leave it out, or use --door grpc or --door http',
      ],
    });
  });

  test('a door that is not one is a usage error listing the doors', async () => {
    expect(await explain(['--policy', MESH, ...deleteShipment, '--door', 'forward_auth'])).toEqual({
      code: 2,
      out: '',
      err: ['--door is one of grpc, http, forward-auth, not "forward_auth"'],
    });
  });
});
