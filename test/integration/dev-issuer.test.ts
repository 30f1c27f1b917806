// The dev OAuth2 issuer over real HTTP: the service account gets its token by client credentials the way the
// support thread's did, the token verifies against the JWKS the issuer serves, and a real scopegate decides
// what each example client may then do. Fresh key directories per run; nothing is committed.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DevClient,
  type DevIssuer,
  type DevIssuerConfig,
  loadDevIssuerConfig,
  MAX_CONFIG_BYTES,
  MAX_TOKEN_REQUEST_BYTES,
  parseDevIssuerConfig,
  startDevIssuer,
} from '../../src/dev/issuer.js';
import { mintToken, SIGNING_KEY_FILE } from '../../src/dev/keys.js';
import { EXAMPLE_AUDIENCE, EXAMPLE_ISSUER, examplePolicyText } from '../support/policies.js';
import { type Harness, JSON_BODY, startHarness, transaction } from '../support/scopegate.js';
import { spawnListening } from './dev-spawn.js';

const EXAMPLE_CONFIG = fileURLToPath(new URL('../../examples/inventory/dev-issuer.yaml', import.meta.url));

/** A client only this test registers, to see roles and locations claims. */
const WAREHOUSE_BOT: DevClient = {
  id: 'warehouse-bot',
  secret: 'test-only-warehouse-bot',
  subject: 'svc-warehouse-bot',
  scopes: ['inventory.read'],
  roles: ['Inventory Data Reader'],
  locations: ['WH01', 'EU-*'],
};

let config: DevIssuerConfig;
let keysDir: string;
let issuer: DevIssuer;

beforeAll(async () => {
  const loaded = await loadDevIssuerConfig(EXAMPLE_CONFIG);
  if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
  config = loaded.config;
  keysDir = join(mkdtempSync(join(tmpdir(), 'scopegate-issuer-')), 'dev-keys');
  issuer = await startDevIssuer({ ...config, clients: [...config.clients, WAREHOUSE_BOT], keysDir });
});
afterAll(async () => issuer?.close());

const secretOf = (id: string) => [...config.clients, WAREHOUSE_BOT].find((c) => c.id === id)!.secret;
const basic = (id: string, secret: string) =>
  'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64');

async function requestToken(form: Record<string, string>, headers: Record<string, string> = {}) {
  const response = await fetch(issuer.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  return { status: response.status, headers: response.headers, json: (await response.json()) as TokenJson };
}

interface TokenJson {
  access_token?: string;
  token_type?: string;
  expires_in?: number;
  scope?: string;
  error?: string;
  error_description?: string;
}

const verify = (token: string) =>
  jwtVerify(token, createRemoteJWKSet(new URL(issuer.jwksUri)), {
    issuer: EXAMPLE_ISSUER,
    audience: EXAMPLE_AUDIENCE,
    algorithms: ['RS256'],
  });

describe('client credentials (RFC 6749 §4.4): what the service account gets', () => {
  it('HTTP Basic + scope → a Bearer token that verifies against the served JWKS with the thread claims', async () => {
    const before = Math.floor(Date.now() / 1000);
    const answer = await requestToken(
      { grant_type: 'client_credentials', scope: 'inventory.read inventory.write' },
      { authorization: basic('inventory-sync', secretOf('inventory-sync')) },
    );
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(answer.json).toMatchObject({
      token_type: 'Bearer',
      expires_in: 300,
      scope: 'inventory.read inventory.write',
    });
    const { payload, protectedHeader } = await verify(answer.json.access_token!);
    expect(protectedHeader.alg).toBe('RS256');
    expect(payload).toMatchObject({
      iss: EXAMPLE_ISSUER,
      aud: EXAMPLE_AUDIENCE,
      sub: 'svc-inventory-sync',
      client_id: 'inventory-sync',
      gty: 'client_credentials',
      scope: 'inventory.read inventory.write',
    });
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(payload.exp! - payload.iat!).toBe(300);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(payload).not.toHaveProperty('roles');
  });

  it('client_id/client_secret in the form work too; no scope asked → every scope the IdP granted', async () => {
    const answer = await requestToken({
      grant_type: 'client_credentials',
      client_id: 'stock-report',
      client_secret: secretOf('stock-report'),
    });
    expect(answer.status).toBe(200);
    expect(answer.json.scope).toBe('inventory.read inventory.write');
    const { payload } = await verify(answer.json.access_token!);
    expect(payload.sub).toBe('svc-stock-report');
    expect(payload.client_id).toBe('stock-report');
    expect(payload.scope).toBe('inventory.read inventory.write');
  });

  it('a subset of the granted scopes is issued as asked (only inventory.write, as in the thread)', async () => {
    const answer = await requestToken(
      { grant_type: 'client_credentials', scope: 'inventory.write' },
      { authorization: basic('inventory-sync', secretOf('inventory-sync')) },
    );
    expect(answer.json.scope).toBe('inventory.write');
    expect((await verify(answer.json.access_token!)).payload.scope).toBe('inventory.write');
  });

  it('roles and locations configured for a client become claims', async () => {
    const answer = await requestToken(
      { grant_type: 'client_credentials' },
      { authorization: basic(WAREHOUSE_BOT.id, WAREHOUSE_BOT.secret) },
    );
    const { payload } = await verify(answer.json.access_token!);
    expect(payload.roles).toEqual(['Inventory Data Reader']);
    expect(payload.locations).toEqual(['WH01', 'EU-*']);
  });
});

describe('RFC 6749 §5.2 errors', () => {
  it('a wrong secret is 401 invalid_client with a Basic challenge, same as an unknown client', async () => {
    const wrong = await requestToken(
      { grant_type: 'client_credentials' },
      { authorization: basic('inventory-sync', 'not-the-secret') },
    );
    expect(wrong.status).toBe(401);
    expect(wrong.json.error).toBe('invalid_client');
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Basic /);
    expect(wrong.headers.get('cache-control')).toBe('no-store');
    expect(JSON.stringify(wrong.json)).not.toContain('not-the-secret');
    const unknown = await requestToken({
      grant_type: 'client_credentials',
      client_id: 'nobody',
      client_secret: 'whatever',
    });
    expect(unknown.status).toBe(401);
    expect(unknown.json).toEqual(wrong.json);
  });

  it('no client authentication at all is 401 invalid_client', async () => {
    const answer = await requestToken({ grant_type: 'client_credentials' });
    expect(answer.status).toBe(401);
    expect(answer.json.error).toBe('invalid_client');
  });

  it('Basic and form credentials at once is 400 invalid_request', async () => {
    const answer = await requestToken(
      {
        grant_type: 'client_credentials',
        client_id: 'inventory-sync',
        client_secret: secretOf('inventory-sync'),
      },
      { authorization: basic('inventory-sync', secretOf('inventory-sync')) },
    );
    expect(answer.status).toBe(400);
    expect(answer.json.error).toBe('invalid_request');
  });

  it('another grant type is 400 unsupported_grant_type; none at all is invalid_request', async () => {
    const auth = { authorization: basic('inventory-sync', secretOf('inventory-sync')) };
    const password = await requestToken({ grant_type: 'password', username: 'u', password: 'p' }, auth);
    expect(password.status).toBe(400);
    expect(password.json.error).toBe('unsupported_grant_type');
    const none = await requestToken({}, auth);
    expect(none.status).toBe(400);
    expect(none.json.error).toBe('invalid_request');
  });

  it('a scope the IdP never granted the client is 400 invalid_scope naming it', async () => {
    const answer = await requestToken(
      { grant_type: 'client_credentials', scope: 'inventory.read inventory.admin' },
      { authorization: basic(WAREHOUSE_BOT.id, WAREHOUSE_BOT.secret) },
    );
    expect(answer.status).toBe(400);
    expect(answer.json.error).toBe('invalid_scope');
    expect(answer.json.error_description).toContain('inventory.admin');
    expect(answer.json.error_description).not.toContain('inventory.read');
  });

  it('a repeated parameter, a JSON body and an oversized body are refused', async () => {
    const auth = basic('inventory-sync', secretOf('inventory-sync'));
    const repeated = await fetch(issuer.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth },
      body: 'grant_type=client_credentials&scope=inventory.read&scope=inventory.write',
    });
    expect(repeated.status).toBe(400);
    expect(((await repeated.json()) as TokenJson).error).toBe('invalid_request');

    const json = await fetch(issuer.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: auth },
      body: JSON.stringify({ grant_type: 'client_credentials' }),
    });
    expect(json.status).toBe(400);
    expect(((await json.json()) as TokenJson).error).toBe('invalid_request');

    const huge = await requestToken(
      { grant_type: 'client_credentials', scope: 'x'.repeat(MAX_TOKEN_REQUEST_BYTES) },
      { authorization: auth },
    );
    expect(huge.status).toBe(413);
    expect(huge.json.error).toBe('invalid_request');
  });

  it('GET on the token endpoint is 405', async () => {
    const answer = await fetch(issuer.tokenUrl);
    expect(answer.status).toBe(405);
    expect(answer.headers.get('allow')).toBe('POST');
  });
});

describe('published keys and metadata', () => {
  it('the JWKS holds only public keys, cacheable for 5 minutes', async () => {
    const response = await fetch(issuer.jwksUri);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('max-age=300');
    const { keys } = (await response.json()) as { keys: Array<Record<string, unknown>> };
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(keys[0]).not.toHaveProperty(member);
  });

  it('openid-configuration names the issuer, JWKS, token endpoint and grant types', async () => {
    const response = await fetch(`${issuer.url}/.well-known/openid-configuration`);
    const metadata = (await response.json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({
      issuer: EXAMPLE_ISSUER,
      jwks_uri: issuer.jwksUri,
      token_endpoint: issuer.tokenUrl,
      grant_types_supported: ['client_credentials'],
    });
  });

  it('keys survive a restart, and `scopegate token --key DIR/signing-key.jwk` tokens verify against them', async () => {
    const kidBefore = ((await (await fetch(issuer.jwksUri)).json()) as { keys: Array<{ kid: string }> })
      .keys[0]!.kid;
    const again = await startDevIssuer({ ...config, keysDir });
    try {
      const { keys } = (await (await fetch(again.jwksUri)).json()) as { keys: Array<{ kid: string }> };
      expect(keys.map((k) => k.kid)).toEqual([kidBefore]);
    } finally {
      await again.close();
    }
    const minted = await mintToken({
      keyFile: join(keysDir, SIGNING_KEY_FILE),
      issuer: EXAMPLE_ISSUER,
      audience: EXAMPLE_AUDIENCE,
      subject: 'svc-inventory-sync',
      client: 'inventory-sync',
      grantType: 'authorization_code',
      scope: 'inventory.read',
      ttlSeconds: 60,
    });
    expect(decodeProtectedHeader(minted).kid).toBe(kidBefore);
    expect((await verify(minted)).payload.gty).toBe('authorization_code');
  });
});

describe('a real scopegate decides what the issued tokens may do (example policy, issuer JWKS)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(() => examplePolicyText(issuer.jwksUri));
  });
  afterAll(async () => h?.close());

  const tokenFor = async (id: string, scope?: string) => {
    const answer = await requestToken(
      { grant_type: 'client_credentials', ...(scope !== undefined && { scope }) },
      { authorization: basic(id, secretOf(id)) },
    );
    expect(answer.status).toBe(200);
    return answer.json.access_token!;
  };
  const postAs = async (token: string) =>
    h.send({
      method: 'POST',
      path: '/api/inventory/transactions',
      token,
      headers: JSON_BODY,
      body: transaction('WH01'),
    });

  it('GET with an issued inventory.read token is allowed, and the upstream learns who called', async () => {
    const answer = await h.send({
      method: 'GET',
      path: '/api/inventory/transactions',
      token: await tokenFor('inventory-sync', 'inventory.read'),
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-scopegate-subject')).toBe('svc-inventory-sync');
    expect(answer.headers.get('x-scopegate-client')).toBe('inventory-sync');
  });

  it('POST with only inventory.write is the thread: 403 scope_missing naming inventory.read', async () => {
    const answer = await postAs(await tokenFor('inventory-sync', 'inventory.write'));
    expect(answer.status).toBe(403);
    expect(answer.reason).toBe('scope_missing');
    expect(answer.headers.get('www-authenticate')).toContain('scope="inventory.read"');
  });

  it('POST with both scopes from inventory-sync is allowed', async () => {
    expect((await postAs(await tokenFor('inventory-sync'))).status).toBe(200);
  });

  it('stock-report got inventory.write from the IdP, but the policy does not let the client use it', async () => {
    const answer = await postAs(await tokenFor('stock-report'));
    expect(answer.status).toBe(403);
    expect(answer.reason).toBe('client_scope_not_allowed');
  });

  it("new-integration's service account lacks the Inventory Transaction Manager role", async () => {
    const answer = await postAs(await tokenFor('new-integration'));
    expect(answer.status).toBe(403);
    expect(answer.reason).toBe('role_missing');
    expect(JSON.stringify(answer.body)).toContain('Inventory Transaction Manager');
  });
});

describe('the issuer file', () => {
  it('the example names the three clients of the walk-through', () => {
    expect(config.issuer).toBe(EXAMPLE_ISSUER);
    expect(config.audience).toBe(EXAMPLE_AUDIENCE);
    expect(config.clients.map((c) => [c.id, c.subject])).toEqual([
      ['inventory-sync', 'svc-inventory-sync'],
      ['stock-report', 'svc-stock-report'],
      ['new-integration', 'svc-new-integration'],
    ]);
  });

  it('mistakes are reported as FILE:LINE:COL: field: message, all of them', () => {
    const text = [
      'issuer: https://dev-issuer.scopegate.local/',
      'audience: https://gateway.example.com',
      'clients:',
      '  inventory-sync:',
      '    secret: s3',
      '    subjet: svc-inventory-sync',
      '    scopes: []',
      '',
    ].join('\n');
    const result = parseDevIssuerConfig(text, 'dev-issuer.yaml');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    // In file order, every one of them, so a user fixes the file in one pass.
    expect(result.problems).toEqual([
      'dev-issuer.yaml:5:5: clients.inventory-sync: missing required key "subject"',
      expect.stringMatching(/^dev-issuer\.yaml:6:5: clients\.inventory-sync: unknown key "subjet"/),
      'dev-issuer.yaml:7:13: clients.inventory-sync.scopes: expected a non-empty list of strings',
    ]);
  });

  it('invalid YAML and duplicate keys are refused with a position', () => {
    const result = parseDevIssuerConfig('issuer: a\nissuer: b\naudience: c\nclients: {}\n', 'f.yaml');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems[0]).toMatch(/^f\.yaml:2:1: invalid YAML: DUPLICATE_KEY/);
  });

  it('a missing file is a problem, not a crash', async () => {
    const result = await loadDevIssuerConfig(join(tmpdir(), 'no-such-dev-issuer.yaml'));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems[0]).toContain('ENOENT');
  });

  it('a file over 64 KiB, or not UTF-8, is refused at its top before it is parsed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scopegate-issuer-file-'));
    const big = join(dir, 'big.yaml');
    writeFileSync(big, `# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`);
    const latin1 = join(dir, 'latin1.yaml');
    writeFileSync(latin1, Buffer.from('issuer: caf\xe9\n', 'latin1'));
    expect(await loadDevIssuerConfig(big)).toEqual({
      ok: false,
      problems: [`${big}:1:1: the file is larger than ${MAX_CONFIG_BYTES} bytes`],
    });
    expect(await loadDevIssuerConfig(latin1)).toEqual({
      ok: false,
      problems: [`${latin1}:1:1: the file is not valid UTF-8`],
    });
  });

  it('an alias is not followed: every value is written out in the issuer file', () => {
    const text =
      'issuer: &i https://dev-issuer.scopegate.local/\naudience: *i\nclients: { a: { secret: s, subject: a, scopes: [x] } }\n';
    expect(parseDevIssuerConfig(text, 'f.yaml')).toEqual({
      ok: false,
      problems: ['f.yaml:2:11: audience: expected a non-empty string'],
    });
  });
});

describe('scopegate dev-issuer (the real binary)', () => {
  it('prints its listening line with jwks_uri and token_url, issues tokens, exits 0 on SIGTERM', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'scopegate-issuer-cli-')), 'keys');
    const { child, listening, exited } = await spawnListening([
      'dev-issuer',
      '--listen',
      '127.0.0.1:0',
      '--config',
      EXAMPLE_CONFIG,
      '--keys',
      dir,
    ]);
    try {
      expect(listening.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(listening.jwks_uri).toBe(`${listening.url}/.well-known/jwks.json`);
      expect(listening.token_url).toBe(`${listening.url}/oauth2/token`);
      // The keys were created on first start, in the directory given.
      expect(JSON.parse(readFileSync(join(dir, SIGNING_KEY_FILE), 'utf8'))).toHaveProperty('d');
      const response = await fetch(listening.token_url!, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: basic('inventory-sync', secretOf('inventory-sync')),
        },
        body: 'grant_type=client_credentials&scope=inventory.read',
      });
      expect(response.status).toBe(200);
      const { access_token } = (await response.json()) as TokenJson;
      const { payload } = await jwtVerify(access_token!, createRemoteJWKSet(new URL(listening.jwks_uri!)), {
        issuer: EXAMPLE_ISSUER,
        audience: EXAMPLE_AUDIENCE,
      });
      expect(payload.sub).toBe('svc-inventory-sync');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
