// The dev OAuth2 issuer with the rest of scopegate: a real scopegate decides what the tokens it issues by
// client credentials may do (the support thread's clients, the example policy, the issuer's own JWKS), and
// the real `scopegate dev-issuer` binary serves them. The issuer's own behaviour (grants, errors, keys, its
// file) is unit-tested in test/unit/dev/issuer.test.ts. Fresh key directories per run; nothing is committed.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevIssuer, DevIssuerConfig } from '../../src/dev/issuer.js';
import { SIGNING_KEY_FILE } from '../../src/dev/keys.js';
import {
  basic,
  EXAMPLE_DEV_ISSUER_FILE,
  requestToken as postTokenRequest,
  startExampleIssuer,
  type TokenJson,
} from '../support/dev-issuer.js';
import { EXAMPLE_AUDIENCE, EXAMPLE_ISSUER, examplePolicyText } from '../support/policies.js';
import { type Harness, JSON_BODY, startHarness, transaction } from '../support/scopegate.js';
import { spawnListening } from './dev-spawn.js';

let config: DevIssuerConfig;
let issuer: DevIssuer;

beforeAll(async () => {
  ({ config, issuer } = await startExampleIssuer());
});
afterAll(async () => issuer?.close());

const secretOf = (id: string) => config.clients.find((c) => c.id === id)!.secret;
const requestToken = (form: Record<string, string>, headers: Record<string, string> = {}) =>
  postTokenRequest(issuer.tokenUrl, form, headers);

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

describe('scopegate dev-issuer (the real binary)', () => {
  it('prints its listening line with jwks_uri and token_url, issues tokens, exits 0 on SIGTERM', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'scopegate-issuer-cli-')), 'keys');
    const { child, listening, exited } = await spawnListening([
      'dev-issuer',
      '--listen',
      '127.0.0.1:0',
      '--config',
      EXAMPLE_DEV_ISSUER_FILE,
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
