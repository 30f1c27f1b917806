// The demo's script, without Envoy: every step's token comes from a client the dev issuer knows, the commands
// it prints for a reader to rerun ask for the very token the step used (or name the certificates of the calling
// workload), and each answer is told with its reason and fix. The story through a real Envoy is
// test/e2e/demo.test.ts.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { main } from '../../../src/cli.js';
import { curlCommand, describeStep, PEER_STORY, REPORTING_WORKLOAD, STORY } from '../../../src/dev/demo.js';
import { repoRoot } from '../../../src/dev/envoy.js';
import type { DevClient } from '../../../src/dev/issuer.js';
import { ensureDevKeys, mintToken } from '../../../src/dev/keys.js';
import type { HttpResult, Stack } from '../../../src/dev/stack.js';

interface IssuerFile {
  issuer: string;
  audience: string;
  clients: Record<string, { secret: string; subject: string; scopes: string[] }>;
}
const issuerFile = parse(
  readFileSync(join(repoRoot(), 'examples', 'inventory', 'dev-issuer.yaml'), 'utf8'),
) as IssuerFile;

/** What a step asked the stack for its token. */
type TokenCall = { kind: 'client'; clientId: string; scope: string } | { kind: 'minted'; token: string };

/** The stack as far as the script reads it: the dev issuer's clients, a real dev key, URLs that are only text. */
let stack: Stack;
let calls: TokenCall[];
beforeAll(async () => {
  const { keyFile } = await ensureDevKeys(join(mkdtempSync(join(tmpdir(), 'scopegate-demo-')), 'dev-keys'));
  const client = (id: string): DevClient => {
    const found = issuerFile.clients[id];
    if (found === undefined) throw new Error(`no client ${id} in examples/inventory/dev-issuer.yaml`);
    return { id, ...found };
  };
  stack = {
    envoy: { url: 'http://127.0.0.1:10000' },
    issuer: { tokenUrl: 'http://127.0.0.1:8090/oauth2/token' },
    issuerConfig: { issuer: issuerFile.issuer, audience: issuerFile.audience },
    keyFile,
    client,
    clientToken: async (clientId: string, scope: string) => {
      calls.push({ kind: 'client', clientId, scope });
      return 'from-the-token-endpoint';
    },
    mint: async (claims: Parameters<Stack['mint']>[0]) => {
      const token = await mintToken({
        keyFile,
        issuer: issuerFile.issuer,
        audience: issuerFile.audience,
        ...claims,
      });
      calls.push({ kind: 'minted', token });
      return token;
    },
  } as unknown as Stack;
});

/** Splits a shell line into words, honouring '…' (with '\'' inside) and "…". Enough for what the demo prints. */
function words(line: string): string[] {
  const out: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === ' ') {
      if (word !== undefined) out.push(word);
      word = undefined;
    } else if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '\\' && line[i + 1] === "'") {
      word = `${word ?? ''}'`;
      i++;
    } else word = (word ?? '') + c;
  }
  if (word !== undefined) out.push(word);
  return out;
}

/** The value after each occurrence of a flag. */
const flagValues = (argv: string[], flag: string) =>
  argv.flatMap((w, i) => (w === flag ? [argv[i + 1]!] : []));

describe('the story', () => {
  it('tells the support thread in eight steps, each asking the dev issuer only for what it granted the client', async () => {
    expect(STORY).toHaveLength(8);
    calls = [];
    for (const step of STORY) await step.token(stack);
    const fromClients = calls.filter((call) => call.kind === 'client');
    expect(fromClients.length).toBeGreaterThan(0);
    for (const call of fromClients) {
      const granted = issuerFile.clients[call.clientId]?.scopes;
      expect(granted, call.clientId).toBeDefined();
      for (const scope of call.scope.split(' '))
        expect(granted, `${call.clientId} ${scope}`).toContain(scope);
    }
  });

  it.each(STORY.map((step, i) => [i + 1, step] as const))(
    'step %i prints the token command that gets the token it used',
    async (_n, step) => {
      calls = [];
      await step.token(stack);
      const [call] = calls;
      const line = step.tokenCommand(stack);
      expect(line.startsWith('TOKEN=$(') && line.endsWith(')')).toBe(true);
      const argv = words(line.slice('TOKEN=$('.length, -1));
      if (call?.kind === 'client') {
        const { secret } = stack.client(call.clientId);
        expect(argv.slice(0, 2)).toEqual(['curl', '-s']);
        expect(flagValues(argv, '-u')).toEqual([`${call.clientId}:${secret}`]);
        expect(flagValues(argv, '-d')).toEqual(['grant_type=client_credentials', `scope=${call.scope}`]);
        expect(argv).toContain(stack.issuer.tokenUrl);
        return;
      }
      // A minted step prints `npx scopegate token …`: run those very flags, and compare the claims.
      expect(argv.slice(0, 3)).toEqual(['npx', 'scopegate', 'token']);
      const printed: string[] = [];
      const log = vi.spyOn(console, 'log').mockImplementation((text: string) => void printed.push(text));
      try {
        expect(await main(argv.slice(2))).toBe(0);
      } finally {
        log.mockRestore();
      }
      const rerun = decodeJwt(printed[0]!);
      const used = decodeJwt(call!.token);
      for (const claim of ['iss', 'aud', 'sub', 'client_id', 'scope', 'gty'] as const)
        expect(rerun[claim], claim).toEqual(used[claim]);
      const now = Date.now() / 1000;
      expect(rerun.exp! < now, 'expired').toBe(used.exp! < now);
    },
  );
});

describe("the calling workload's story", () => {
  it('asks for a peer-only route of the example policy, first on plaintext, then over mTLS as a listed workload', () => {
    const policy = parse(readFileSync(join(repoRoot(), 'examples', 'inventory', 'policy.yaml'), 'utf8'));
    const [plaintext, fixed] = PEER_STORY;
    expect(PEER_STORY).toHaveLength(2);
    const route = policy.routes.find((r: { path: string }) => r.path === plaintext!.request.path);
    expect(route.identity).toBe('peer');
    expect(plaintext!.workload).toBeUndefined();
    expect(fixed!.request).toEqual(plaintext!.request);
    expect(fixed!.workload).toBe(REPORTING_WORKLOAD);
    // Listed by the policy's `…/reporting/sa/*` entry, whose roles grant the route's permissions.
    const namespace = REPORTING_WORKLOAD.slice(0, REPORTING_WORKLOAD.lastIndexOf('/') + 1);
    expect(Object.keys(policy.peers)).toContain(`${namespace}*`);
  });

  it('prints curl with no token for a peer step, and with the files of the certificates the demo made', () => {
    const tls = { caFile: '/tmp/pki/mesh-ca.crt', certFile: '/tmp/pki/w.crt', keyFile: '/tmp/my pki/w.key' };
    const plain = words(curlCommand('http://127.0.0.1:10000', { path: '/api/x' }, { token: false }));
    expect(plain).toEqual(['curl', '-i', 'http://127.0.0.1:10000/api/x']);
    const mtls = words(curlCommand('https://127.0.0.1:10443', { path: '/api/x' }, { token: false, tls }));
    expect(mtls.slice(0, 3)).toEqual(['curl', '-i', 'https://127.0.0.1:10443/api/x']);
    expect(flagValues(mtls, '--cacert')).toEqual([tls.caFile]);
    expect(flagValues(mtls, '--cert')).toEqual([tls.certFile]);
    expect(flagValues(mtls, '--key')).toEqual([tls.keyFile]);
    expect(mtls).not.toContain('-H');
    const withToken = words(curlCommand('http://e', { path: '/p' }, { token: true }));
    expect(flagValues(withToken, '-H')).toEqual(['Authorization: Bearer $TOKEN']);
  });
});

describe('describeStep', () => {
  const result = (
    status: number,
    json?: Record<string, unknown>,
    headers: HttpResult['headers'] = {},
  ): HttpResult => ({
    status,
    headers,
    text: json === undefined ? 'upstream connect error' : JSON.stringify(json),
    json,
  });

  it('an allow says what identity the upstream received', () => {
    const allowed = result(201, {
      received_identity: { subject: 'svc-inventory-sync', route: 'create_transaction' },
    });
    expect(describeStep(allowed, { subject: 'svc-inventory-sync', client: 'inventory-sync' })).toEqual([
      '→ HTTP 201',
      '  allowed: the upstream received x-scopegate-subject: svc-inventory-sync, route create_transaction',
    ]);
  });

  it('an allow on a peer-only route names the calling workload the upstream received, and no subject', () => {
    const allowed = result(200, {
      received_identity: { subject: null, peer: REPORTING_WORKLOAD, route: 'stock_report' },
    });
    expect(describeStep(allowed, { subject: '', client: '' })).toEqual([
      '→ HTTP 200',
      `  allowed: the upstream received x-scopegate-peer: ${REPORTING_WORKLOAD}, route stock_report`,
    ]);
    const both = result(201, {
      received_identity: { subject: 'svc-inventory-sync', peer: REPORTING_WORKLOAD, route: 'reserve_stock' },
    });
    expect(describeStep(both, { subject: '', client: '' })[1]).toBe(
      `  allowed: the upstream received x-scopegate-subject: svc-inventory-sync, x-scopegate-peer: ${REPORTING_WORKLOAD}, route reserve_stock`,
    );
  });

  it('a peer_missing deny says what to fix: the hop must be mTLS', () => {
    const denied = result(403, {
      reason: 'peer_missing',
      error_description: 'no peer',
      missing: { peer: null },
    });
    expect(describeStep(denied, { subject: '', client: '' }).slice(2)).toEqual([
      expect.stringMatching(/^ {2}fix: call this route from a workload in the mesh, over mTLS/),
    ]);
  });

  it('a deny gives the challenge, the reason with its description, and each fix for this caller', () => {
    const denied = result(
      403,
      {
        reason: 'scope_missing',
        error_description: 'route create_transaction requires INV_TRANSACTION_READ',
        missing: { permissions: ['INV_TRANSACTION_READ'], scopes: ['inventory.read'] },
      },
      { 'www-authenticate': 'Bearer realm="inventory", error="insufficient_scope", scope="inventory.read"' },
    );
    expect(describeStep(denied, { subject: 'svc-inventory-sync', client: 'inventory-sync' })).toEqual([
      '→ HTTP 403',
      '  WWW-Authenticate: Bearer realm="inventory", error="insufficient_scope", scope="inventory.read"',
      '  reason: scope_missing — route create_transaction requires INV_TRANSACTION_READ',
      '  fix: request scope inventory.read as well',
    ]);
  });

  it('the fix names the caller the step is about', () => {
    const denied = result(403, {
      reason: 'role_missing',
      error_description: 'no role grants INV_TRANSACTION_CREATE',
      missing: { roles: ['Inventory Transaction Manager'] },
    });
    expect(describeStep(denied, { subject: 'svc-new-integration', client: 'new-integration' }).at(-1)).toBe(
      '  fix: give svc-new-integration the role Inventory Transaction Manager',
    );
  });

  it('repeated challenges are joined; a reason scopegate does not know gets no fix; a body that is not JSON, no reason', () => {
    const twice = result(
      401,
      { reason: 'not_a_reason', error_description: 'x' },
      { 'www-authenticate': ['Bearer a', 'Bearer b'] },
    );
    expect(describeStep(twice, { subject: 's', client: 'c' })).toEqual([
      '→ HTTP 401',
      '  WWW-Authenticate: Bearer a, Bearer b',
      '  reason: not_a_reason — x',
    ]);
    expect(describeStep(result(503), { subject: 's', client: 'c' })).toEqual(['→ HTTP 503']);
  });
});
