// `explain --claims FILE`: the claims file is read like every file a person gives scopegate, capped and
// strictly UTF-8, and a file that cannot be used is a usage error (exit 2) that says why, never its content.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { explainCommand, MAX_CLAIMS_BYTES } from '../../../src/explain/command.js';

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
