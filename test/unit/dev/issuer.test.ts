// The dev OAuth2 issuer (client credentials only, RFC 6749 §4.4) on 127.0.0.1, port 0: the service account
// gets its token the way the support thread's did, the token verifies against the JWKS the issuer serves,
// every refusal is its RFC 6749 §5.2 error, and its file's mistakes read FILE:LINE:COL. The token endpoint's
// decision is also tested as the plain function it is. Fresh key directories per run; nothing is committed.
// (A real scopegate deciding on these tokens, and the `scopegate dev-issuer` binary: test/integration.)
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_TOKEN_LIFETIME_SECONDS,
  type DevClient,
  type DevIssuer,
  type DevIssuerConfig,
  decideTokenRequest,
  JWKS_PATH,
  loadDevIssuerConfig,
  MAX_CONFIG_BYTES,
  MAX_TOKEN_REQUEST_BYTES,
  parseDevIssuerConfig,
  startDevIssuer,
  TOKEN_PATH,
  type TokenRequest,
} from '../../../src/dev/issuer.js';
import { ensureDevKeys, JWKS_FILE, mintToken, SIGNING_KEY_FILE } from '../../../src/dev/keys.js';
import {
  basic,
  requestToken as postTokenRequest,
  startExampleIssuer,
  type TokenJson,
} from '../../support/dev-issuer.js';
import { EXAMPLE_AUDIENCE, EXAMPLE_ISSUER, supportThreadClaims } from '../../support/policies.js';

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
  ({ config, keysDir, issuer } = await startExampleIssuer([WAREHOUSE_BOT]));
});
afterAll(async () => issuer?.close());

const secretOf = (id: string) => [...config.clients, WAREHOUSE_BOT].find((c) => c.id === id)!.secret;
const requestToken = (form: Record<string, string>, headers: Record<string, string> = {}) =>
  postTokenRequest(issuer.tokenUrl, form, headers);

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
    expect(payload).toMatchObject(supportThreadClaims('inventory.read inventory.write'));
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

describe("decideTokenRequest: the token endpoint's decision over plain data", () => {
  const SYNC: DevClient = {
    id: 'inventory-sync',
    secret: 's3cret:with+colon',
    subject: 'svc-inventory-sync',
    scopes: ['inventory.read', 'inventory.write'],
  };
  const clients = new Map([[SYNC.id, SYNC]]);
  const FORM = 'application/x-www-form-urlencoded';
  const withBasic = (body: string, authorization = basic(SYNC.id, SYNC.secret)): TokenRequest => ({
    authorization,
    contentType: FORM,
    body,
  });
  const decide = (request: TokenRequest) => decideTokenRequest(request, clients);
  const refusal = (request: TokenRequest) => {
    const decision = decide(request);
    if (decision.ok) throw new Error('expected a refusal');
    return decision;
  };

  it('grants the scopes asked for, in the order asked, each once', () => {
    const decision = decide(
      withBasic('grant_type=client_credentials&scope=inventory.write+inventory.read+inventory.write'),
    );
    expect(decision).toEqual({ ok: true, client: SYNC, scopes: ['inventory.write', 'inventory.read'] });
  });

  it('no scope, an empty scope or one of spaces only: every scope the IdP granted, as a copy', () => {
    for (const body of [
      'grant_type=client_credentials',
      'grant_type=client_credentials&scope=',
      'grant_type=client_credentials&scope=+++',
    ]) {
      const decision = decide(withBasic(body));
      expect(decision).toEqual({ ok: true, client: SYNC, scopes: ['inventory.read', 'inventory.write'] });
      expect(decision.ok && decision.scopes).not.toBe(SYNC.scopes);
    }
  });

  it('the media type is compared without its parameters and case', () => {
    const request = {
      ...withBasic('grant_type=client_credentials'),
      contentType: 'Application/X-WWW-Form-URLEncoded ; charset=UTF-8',
    };
    expect(decide(request).ok).toBe(true);
  });

  it.each([
    ['no content type', undefined],
    ['JSON', 'application/json'],
    ['multipart', 'multipart/form-data; boundary=x'],
  ])('%s is 400 invalid_request', (_, contentType) => {
    expect(refusal({ ...withBasic('grant_type=client_credentials'), contentType })).toEqual({
      ok: false,
      status: 400,
      error: 'invalid_request',
      description: 'the token request must be application/x-www-form-urlencoded',
    });
  });

  it('a repeated parameter is invalid_request naming it, even when one of the two is empty', () => {
    expect(refusal(withBasic('grant_type=client_credentials&scope=inventory.read&scope='))).toMatchObject({
      status: 400,
      error: 'invalid_request',
      description: 'the parameter scope is repeated',
    });
  });

  it('HTTP Basic credentials are form-decoded (RFC 6749 §2.3.1), the scheme in any case', () => {
    // basic() form-encodes, so the ":" and "+" in the secret arrive as %3A and %2B.
    expect(decide(withBasic('grant_type=client_credentials')).ok).toBe(true);
    const raw = `Basic ${Buffer.from(`${SYNC.id}:${SYNC.secret}`).toString('base64')}`;
    // Sent without form-encoding, the id still ends at the first ":", but the "+" decodes to a space.
    expect(refusal(withBasic('grant_type=client_credentials', raw)).error).toBe('invalid_client');
    expect(
      decide(
        withBasic('grant_type=client_credentials', basic(SYNC.id, SYNC.secret).replace('Basic', 'basic')),
      ).ok,
    ).toBe(true);
  });

  it.each([
    ['another scheme', 'Bearer abc'],
    ['no colon in the credentials', `Basic ${Buffer.from('inventory-sync').toString('base64')}`],
    ['a broken %-escape', `Basic ${Buffer.from('inventory%ZZsync:x').toString('base64')}`],
    ['characters outside base64', 'Basic inventory-sync:s3cret'],
  ])('an Authorization header with %s is 401 invalid_client', (_, authorization) => {
    expect(refusal(withBasic('grant_type=client_credentials', authorization))).toEqual({
      ok: false,
      status: 401,
      error: 'invalid_client',
      description: 'the Authorization header is not HTTP Basic credentials',
    });
  });

  it('form credentials: client_id and client_secret together; an empty one counts as omitted', () => {
    const form = (body: string): TokenRequest => ({ authorization: undefined, contentType: FORM, body });
    const secret = encodeURIComponent(SYNC.secret);
    expect(
      decide(form(`grant_type=client_credentials&client_id=inventory-sync&client_secret=${secret}`)).ok,
    ).toBe(true);
    for (const body of [
      'grant_type=client_credentials&client_id=inventory-sync',
      `grant_type=client_credentials&client_secret=${secret}`,
      'grant_type=client_credentials&client_id=inventory-sync&client_secret=',
    ]) {
      expect(refusal(form(body))).toMatchObject({
        status: 401,
        error: 'invalid_client',
        description: 'client_id and client_secret go together',
      });
    }
    // Empty form credentials next to Basic are no second method.
    expect(decide(withBasic('grant_type=client_credentials&client_id=&client_secret=')).ok).toBe(true);
  });

  it('an unknown client and a wrong secret get the very same answer, which never repeats the secret', () => {
    const unknown = refusal(withBasic('grant_type=client_credentials', basic('nobody', SYNC.secret)));
    expect(unknown).toEqual({
      ok: false,
      status: 401,
      error: 'invalid_client',
      description: 'client authentication failed',
    });
    for (const wrong of ['s3cret', `${SYNC.secret} `, SYNC.secret.toUpperCase(), '']) {
      expect(refusal(withBasic('grant_type=client_credentials', basic(SYNC.id, wrong)))).toEqual(unknown);
    }
  });

  it('the client is authenticated before anything else is judged: no credentials and no grant type is invalid_client', () => {
    expect(refusal({ authorization: undefined, contentType: FORM, body: '' }).error).toBe('invalid_client');
    expect(refusal(withBasic('grant_type=password', basic(SYNC.id, 'wrong'))).error).toBe('invalid_client');
  });

  it('a scope with a character RFC 6749 §3.3 forbids is invalid_scope, without echoing it', () => {
    for (const scope of ['inventory"read', 'inventory\\read', 'inventory.réad']) {
      const denied = refusal(withBasic(`grant_type=client_credentials&scope=${encodeURIComponent(scope)}`));
      expect(denied).toMatchObject({ status: 400, error: 'invalid_scope' });
      expect(denied.description).toBe('scope holds a character RFC 6749 §3.3 forbids');
    }
  });

  it('scopes the IdP never granted are named, all of them, and only them', () => {
    const denied = refusal(
      withBasic('grant_type=client_credentials&scope=inventory.read+inventory.admin+audit.read'),
    );
    expect(denied).toMatchObject({ status: 400, error: 'invalid_scope' });
    expect(denied.description).toBe('the client was not granted inventory.admin, audit.read by this issuer');
  });
});

describe('startDevIssuer: a configuration it cannot serve is refused before it listens', () => {
  const client = (extra: Partial<DevClient> = {}): DevClient => ({
    id: 'a',
    secret: 's',
    subject: 'sa',
    scopes: ['x'],
    ...extra,
  });
  const options = (extra: Partial<Parameters<typeof startDevIssuer>[0]> = {}) => ({
    issuer: EXAMPLE_ISSUER,
    audience: EXAMPLE_AUDIENCE,
    keysDir,
    clients: [client()],
    ...extra,
  });

  it('a client listed twice, or with an empty secret', async () => {
    await expect(startDevIssuer(options({ clients: [client(), client()] }))).rejects.toThrow(
      'dev issuer: client "a" is listed twice',
    );
    await expect(startDevIssuer(options({ clients: [client({ secret: '' })] }))).rejects.toThrow(
      'dev issuer: client "a" has an empty secret',
    );
  });

  it('a token lifetime that is not a whole number of seconds from 1 to 24 h', async () => {
    for (const tokenLifetimeSeconds of [0, -1, 1.5, 24 * 3600 + 1, Number.NaN]) {
      await expect(startDevIssuer(options({ tokenLifetimeSeconds }))).rejects.toThrow(
        'tokenLifetimeSeconds must be an integer 1..86400',
      );
    }
  });

  it('a jwks.json holding private key material is never published', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'scopegate-issuer-private-')), 'keys');
    const { keyFile, jwksFile } = await ensureDevKeys(dir);
    writeFileSync(jwksFile, JSON.stringify({ keys: [JSON.parse(readFileSync(keyFile, 'utf8'))] }));
    await expect(startDevIssuer(options({ keysDir: dir }))).rejects.toThrow(
      'holds private key material; refusing to publish it',
    );
    writeFileSync(join(dir, JWKS_FILE), JSON.stringify({ keys: [] }));
    await expect(startDevIssuer(options({ keysDir: dir }))).rejects.toThrow('holds no keys');
  });

  it('a jwks.json over 64 KiB is refused', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'scopegate-issuer-big-')), 'keys');
    const { jwksFile } = await ensureDevKeys(dir);
    const published = JSON.parse(readFileSync(jwksFile, 'utf8'));
    writeFileSync(jwksFile, JSON.stringify({ ...published, padding: 'x'.repeat(64 * 1024) }));
    await expect(startDevIssuer(options({ keysDir: dir }))).rejects.toThrow('is larger than 64 KiB');
  });
});

describe('the HTTP edge', () => {
  it('listens on 127.0.0.1 at the port it says, and names its endpoints from it', () => {
    expect(issuer.port).toBeGreaterThan(0);
    expect(issuer.url).toBe(`http://127.0.0.1:${issuer.port}`);
    expect(issuer.jwksUri).toBe(issuer.url + JWKS_PATH);
    expect(issuer.tokenUrl).toBe(issuer.url + TOKEN_PATH);
  });

  it('tokens live tokenLifetimeSeconds (default 300)', async () => {
    expect(DEFAULT_TOKEN_LIFETIME_SECONDS).toBe(300);
    const short = await startDevIssuer({ ...config, tokenLifetimeSeconds: 60, keysDir });
    try {
      const answer = await postTokenRequest(
        short.tokenUrl,
        { grant_type: 'client_credentials' },
        { authorization: basic('inventory-sync', secretOf('inventory-sync')) },
      );
      expect(answer.json.expires_in).toBe(60);
      const { payload } = await verify(answer.json.access_token!);
      expect(payload.exp! - payload.iat!).toBe(60);
    } finally {
      await short.close();
    }
  });

  it('HEAD is answered like GET; the query string does not change the route; other methods are 405 naming the one allowed', async () => {
    const head = await fetch(issuer.jwksUri, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    expect((await fetch(`${issuer.jwksUri}?refresh=1`)).status).toBe(200);
    const post = await fetch(issuer.jwksUri, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
    expect(((await post.json()) as TokenJson).error).toBe('invalid_request');
  });

  it('/healthz answers ok; any other path is 404', async () => {
    expect(await (await fetch(`${issuer.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const missing = await fetch(`${issuer.url}/oauth2/authorize`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'not_found' });
  });

  it('RFC 8414 metadata is served at both well-known names: auth methods and every scope a client was granted, once', async () => {
    const openid = await (await fetch(`${issuer.url}/.well-known/openid-configuration`)).json();
    const oauth = await (await fetch(`${issuer.url}/.well-known/oauth-authorization-server`)).json();
    expect(oauth).toEqual(openid);
    expect(oauth).toMatchObject({
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      scopes_supported: ['inventory.read', 'inventory.write'],
    });
  });

  it('a refused token request over the size limit also closes the connection (its unread rest is no next request)', async () => {
    const answer = await requestToken(
      { grant_type: 'client_credentials', scope: 'x'.repeat(MAX_TOKEN_REQUEST_BYTES) },
      { authorization: basic('inventory-sync', secretOf('inventory-sync')) },
    );
    expect(answer.status).toBe(413);
    expect(answer.headers.get('connection')).toBe('close');
    expect(answer.json.error_description).toBe(
      `the token request is larger than ${MAX_TOKEN_REQUEST_BYTES} bytes`,
    );
  });
});

describe('the issuer file: every field and its mistakes', () => {
  const CLIENTS = 'clients:\n  a: { secret: s, subject: sa, scopes: [x] }\n';

  it('a complete file: lifetime, clients with roles and locations, in file order', () => {
    const text = `issuer: i\naudience: a\ntokenLifetimeSeconds: 60\nclients:\n  a: { secret: s, subject: sa, scopes: [x], roles: [R], locations: [WH01, "EU-*"] }\n  b: { secret: t, subject: sb, scopes: [y], roles: [] }\n`;
    expect(parseDevIssuerConfig(text, 'f.yaml')).toEqual({
      ok: true,
      config: {
        issuer: 'i',
        audience: 'a',
        tokenLifetimeSeconds: 60,
        clients: [
          { id: 'a', secret: 's', subject: 'sa', scopes: ['x'], roles: ['R'], locations: ['WH01', 'EU-*'] },
          { id: 'b', secret: 't', subject: 'sb', scopes: ['y'], roles: [] },
        ],
      },
    });
  });

  it.each([
    ['an empty file', '', ['f.yaml:1:1: expected a mapping']],
    ['a missing issuer', `audience: a\n${CLIENTS}`, ['f.yaml:1:1: missing required key "issuer"']],
    [
      'a misspelt key',
      `issuer: i\naudiance: a\n${CLIENTS}`,
      [
        'f.yaml:1:1: missing required key "audience"',
        'f.yaml:2:1: unknown key "audiance" (expected one of issuer, audience, tokenLifetimeSeconds, clients)',
      ],
    ],
    [
      'a lifetime of 0',
      `issuer: i\naudience: a\ntokenLifetimeSeconds: 0\n${CLIENTS}`,
      ['f.yaml:3:23: tokenLifetimeSeconds: expected an integer 1..86400'],
    ],
    [
      'a lifetime as a string',
      `issuer: i\naudience: a\ntokenLifetimeSeconds: "300"\n${CLIENTS}`,
      ['f.yaml:3:23: tokenLifetimeSeconds: expected an integer 1..86400'],
    ],
    [
      'no clients',
      'issuer: i\naudience: a\nclients: {}\n',
      ['f.yaml:3:10: clients: expected a mapping of client id to client'],
    ],
    [
      'a client id with ":" (HTTP Basic could not carry it)',
      'issuer: i\naudience: a\nclients:\n  "a:b": { secret: s, subject: sa, scopes: [x] }\n',
      ['f.yaml:4:3: clients: a client id is a non-empty string without ":"'],
    ],
    [
      'a blank secret',
      'issuer: i\naudience: a\nclients:\n  a: { secret: "  ", subject: sa, scopes: [x] }\n',
      ['f.yaml:4:16: clients.a.secret: expected a non-empty string'],
    ],
    [
      'a scope RFC 6749 forbids',
      'issuer: i\naudience: a\nclients:\n  a: { secret: s, subject: sa, scopes: [x, "y z"] }\n',
      ['f.yaml:4:44: clients.a.scopes[1]: expected an RFC 6749 scope token'],
    ],
    [
      'roles that are not a list',
      'issuer: i\naudience: a\nclients:\n  a: { secret: s, subject: sa, scopes: [x], roles: R }\n',
      ['f.yaml:4:52: clients.a.roles: expected a list'],
    ],
  ])('%s', (_, text, problems) => {
    expect(parseDevIssuerConfig(text, 'f.yaml')).toEqual({ ok: false, problems });
  });
});
