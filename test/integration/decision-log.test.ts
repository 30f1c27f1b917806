// The decision log: one JSON line per deny (allows at debug) with what an operator needs, and never a token,
// whatever place a client puts it in.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/telemetry/log.js';
import { type Harness, JSON_BODY, startHarness } from '../support/scopegate.js';

let text = '';
const sink = new Writable({
  write(chunk, _encoding, done) {
    text += String(chunk);
    done();
  },
});
const lines = () =>
  text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

let h: Harness;
let token: string;
let expired: string;
beforeAll(async () => {
  h = await startHarness(undefined, { log: createLogger('debug', sink) });
  token = await h.syncToken('inventory.read inventory.write');
  const now = Math.floor(Date.now() / 1000);
  expired = await h.syncToken('inventory.read', { iat: now - 7200, exp: now - 3600 });
  const list = '/api/inventory/transactions';
  const requests = [
    { method: 'GET', path: list, token },
    { method: 'GET', path: list, token: expired },
    { method: 'GET', path: `${list}?access_token=${token}` },
    { method: 'GET', path: `${list}/${token}`, token },
    { method: 'GET', path: `/api/unknown/${token}`, token },
    {
      method: 'POST',
      path: list,
      token,
      headers: JSON_BODY,
      body: JSON.stringify({ location: 'WH01', note: token }),
    },
    { method: 'POST', path: list, token, headers: JSON_BODY, body: JSON.stringify({ location: token }) },
    {
      method: 'POST',
      path: list,
      token,
      headers: JSON_BODY,
      body: `{"location":"WH01","location":"${token}"}`,
    },
    { method: 'GET', path: list, token, headers: [['x-scopegate-subject', token] as [string, string]] },
    { method: 'GET', path: list, token, headers: [['cookie', `session=${token}`] as [string, string]] },
    { method: 'GET', path: list, token, headers: [['x-api-key', token] as [string, string]] },
    {
      method: 'GET',
      path: list,
      headers: [
        ['authorization', `Bearer ${token}`],
        ['authorization', `Bearer ${expired}`],
      ] as Array<[string, string]>,
    },
    { method: 'GET', path: list, headers: [['authorization', `Basic ${token}`] as [string, string]] },
  ];
  for (const request of requests) await h.send(request);
  // pino writes asynchronously: wait until every decision has been logged.
  for (let i = 0; i < 100 && lines().filter((l) => l.msg === 'decision').length < requests.length; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
});
afterAll(async () => h?.close());

describe('decision log', () => {
  it('has one line per decision, denies at info and allows at debug', () => {
    const decisions = lines().filter((l) => l.msg === 'decision');
    expect(decisions).toHaveLength(13);
    for (const line of decisions) expect(line.level).toBe(line.decision === 'allow' ? 'debug' : 'info');
  });

  it('a deny line carries request id, route, reason, subject, client, missing, revision and duration', () => {
    const post = lines().find((l) => l.reason === 'request_malformed' && l.route === 'create_transaction');
    expect(post).toBeDefined();
    const expiredLine = lines().find((l) => l.reason === 'token_expired');
    expect(expiredLine).toMatchObject({
      request_id: expect.any(String),
      decision: 'deny',
      policy_revision: h.running.policies()[0]!.revision,
      duration_ms: expect.any(Number),
    });
    const denied = lines().find((l) => l.reason === 'body_unreadable');
    expect(denied).toMatchObject({
      route: 'create_transaction',
      subject: 'svc-inventory-sync',
      client: 'inventory-sync',
      detail: expect.stringContaining('duplicate key'),
    });
  });

  it('never contains the token, nor any of its three parts, wherever the client put it', () => {
    expect(text.length).toBeGreaterThan(0);
    for (const secret of [token, expired, ...token.split('.'), ...expired.split('.').slice(1)]) {
      expect(text).not.toContain(secret);
    }
  });
});
