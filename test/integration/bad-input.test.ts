// Hostile and broken input over real gRPC: each gets its own reason, never a gRPC error, and the server keeps
// serving. (The full hostile corpus lives with the hardening work; these are the core's promises.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRequestFor } from '../../src/wire/check-request.js';
import { EXAMPLE_AUDIENCE, EXAMPLE_ISSUER } from '../support/policies.js';
import { type Harness, JSON_BODY, startHarness, transaction } from '../support/scopegate.js';
import { b64url, handBuiltToken, mintToken, newSigningKey } from '../support/tokens.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h?.close());

const claims = () => ({
  iss: EXAMPLE_ISSUER,
  aud: EXAMPLE_AUDIENCE,
  sub: 'svc-inventory-sync',
  client_id: 'inventory-sync',
  gty: 'client_credentials',
  scope: 'inventory.read inventory.write',
  exp: Math.floor(Date.now() / 1000) + 300,
});
const list = (token: string, path = '/api/inventory/transactions') => ({ method: 'GET', path, token });
const create = (token: string, body: string, headers = JSON_BODY) => ({
  method: 'POST',
  path: '/api/inventory/transactions',
  token,
  headers,
  body,
});

describe('tokens', () => {
  it('alg none is token_invalid', async () => {
    const token = handBuiltToken({ alg: 'none', typ: 'JWT', kid: h.key.kid }, claims());
    expect((await h.send(list(token))).reason).toBe('token_invalid');
  });

  it('a token signed by another key under the published kid is token_invalid', async () => {
    const impostor = await newSigningKey('RS256', h.key.kid);
    const token = await mintToken(impostor, claims());
    expect((await h.send(list(token))).reason).toBe('token_invalid');
  });

  it('an unknown kid is key_unknown (after at most one JWKS refresh)', async () => {
    const stranger = await newSigningKey('RS256');
    const answer = await h.send(list(await mintToken(stranger, claims())));
    expect(answer.status).toBe(401);
    expect(answer.reason).toBe('key_unknown');
  });

  const padded = (bytes: number) =>
    handBuiltToken({ alg: 'RS256', kid: h.key.kid }, { ...claims(), pad: 'x'.repeat(bytes) }, b64url('sig'));

  it('a 20 KB token (over maxTokenBytes, 8 KiB) is token_invalid before any signature work', async () => {
    const answer = await h.send(list(padded(20_000)));
    expect(answer.status).toBe(401);
    expect(answer.reason).toBe('token_invalid');
    // Generic for the caller; the size is in the log and in explain.
    expect(answer.body?.error_description).toBe('The access token is not valid.');
  });

  it('a 100 KB token that overflows the 64 KiB header block is a malformed token: 401 token_invalid (RFC 6750 §3.1)', async () => {
    const answer = await h.send(list(padded(100_000)));
    expect(answer.status).toBe(401);
    expect(answer.reason).toBe('token_invalid');
  });

  it('headers too large without the token are still request_malformed (400)', async () => {
    const answer = await h.send({ ...list(padded(100)), headers: [['x-filler', 'y'.repeat(70_000)]] });
    expect(answer.status).toBe(400);
    expect(answer.reason).toBe('request_malformed');
  });
});

describe('401 and 400 answers say nothing about the policy (security rule 10)', () => {
  it('a token signed with an algorithm the issuer does not allow is not told which ones it allows', async () => {
    const es384 = await newSigningKey('ES384', h.key.kid);
    const answer = await h.send(list(await mintToken(es384, claims())));
    expect(answer.reason).toBe('token_invalid');
    expect(answer.body?.error_description).toBe('The access token is not valid.');
    expect(JSON.stringify(answer.body)).not.toMatch(/RS256|ES256|allowed/);
  });

  it('a token for another audience is not told the expected audience', async () => {
    const answer = await h.send(
      list(await mintToken(h.key, { ...claims(), aud: 'https://elsewhere.example' })),
    );
    expect(answer.reason).toBe('audience_mismatch');
    expect(JSON.stringify(answer.body)).not.toContain(EXAMPLE_AUDIENCE);
    expect(answer.headers.get('www-authenticate')).not.toContain(EXAMPLE_AUDIENCE);
  });

  it('a 400 for a location names neither the body field nor the route', async () => {
    const answer = await h.send(create(await mintToken(h.key, claims()), '{"location":"WH*"}'));
    expect(answer.status).toBe(400);
    expect(answer.body?.error_description).toBe('The request is malformed or ambiguous.');
    expect(JSON.stringify(answer.body)).not.toMatch(/location|create_transaction/);
  });
});

describe('headers and paths', () => {
  it('two Authorization values (Envoy joins them with ",") are request_malformed', async () => {
    const token = await h.syncToken('inventory.read');
    const answer = await h.send({
      method: 'GET',
      path: '/api/inventory/transactions',
      headers: [
        ['authorization', `Bearer ${token}`],
        ['authorization', `Bearer ${token}`],
      ],
    });
    expect(answer.status).toBe(400);
    expect(answer.headers.get('www-authenticate')).toContain('error="invalid_request"');
    expect(answer.reason).toBe('request_malformed');
  });

  for (const path of [
    '/api/inventory//transactions',
    '/api/inventory%2Ftransactions',
    '/api/inventory/transactions/../transactions',
    '/api/inventory/transactions/..%2F..%2Fadmin',
    '/api/inventory/transactions;jsessionid=1',
  ]) {
    it(`non-canonical path ${path} is request_malformed`, async () => {
      const request = checkRequestFor({ ...list(await h.syncToken('inventory.read'), path), headers: [] });
      const answer = await h.sendRaw(request);
      expect(answer.status).toBe(400);
      expect(answer.reason).toBe('request_malformed');
      // Even a refused request keeps Envoy's x-request-id, so the deny can be found in the access log.
      expect(answer.body?.request_id).toBe(request.attributes?.request?.http?.headers?.['x-request-id']);
    });
  }

  it('a client-sent x-scopegate-subject never reaches the upstream as ours', async () => {
    const answer = await h.send({
      ...list(await h.syncToken('inventory.read')),
      headers: [
        ['x-scopegate-subject', 'admin'],
        ['x-scopegate-role', 'root'],
      ],
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-scopegate-subject')).toBe('svc-inventory-sync');
    expect(answer.headersToRemove).toEqual(['x-scopegate-role']);
  });
});

describe('bodies', () => {
  it('a duplicate location key is body_unreadable, never checked against one value and stored with another', async () => {
    const token = await h.syncToken('inventory.read inventory.write');
    const answer = await h.send(create(token, '{"location":"WH01","location":"WH99","item":"ITEM001"}'));
    expect(answer.status).toBe(403);
    expect(answer.reason).toBe('body_unreadable');
  });

  it('a body Envoy cut at its buffer limit is body_unreadable, not "no location"', async () => {
    const token = await h.syncToken('inventory.read inventory.write');
    const answer = await h.send(
      create(token, transaction('WH01').slice(0, 10), [...JSON_BODY, ['x-envoy-auth-partial-body', 'true']]),
    );
    expect(answer.reason).toBe('body_unreadable');
  });

  it('a POST with no body where the route reads one is body_unreadable', async () => {
    const token = await h.syncToken('inventory.read inventory.write');
    const { body: _, ...noBody } = create(token, '');
    expect((await h.send(noBody)).reason).toBe('body_unreadable');
  });

  it('a body with no location is location_missing', async () => {
    const token = await h.syncToken('inventory.read inventory.write');
    expect((await h.send(create(token, '{"item":"ITEM001"}'))).reason).toBe('location_missing');
  });
});

describe('CheckRequests Envoy would never send', () => {
  it('no attributes at all is request_malformed, as a CheckResponse', async () => {
    const answer = await h.sendRaw({});
    expect(answer.status).toBe(400);
    expect(answer.reason).toBe('request_malformed');
  });

  it('raw headers (header_map) are read like the headers map', async () => {
    const token = await h.syncToken('inventory.read');
    const request = checkRequestFor({
      method: 'GET',
      path: '/api/inventory/transactions',
      token,
      headers: [],
    });
    const http = request.attributes!.request!.http!;
    const headers = Object.entries(http.headers ?? {}).map(([key, value]) => ({
      key,
      raw_value: Buffer.from(value),
    }));
    delete http.headers;
    http.header_map = { headers };
    expect((await h.sendRaw(request)).status).toBe(200);
  });

  it('after all of the above, the server still serves', async () => {
    const answer = await h.send(list(await h.syncToken('inventory.read')));
    expect(answer.status).toBe(200);
  });
});
