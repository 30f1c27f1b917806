// The log lines an operator reads: one per deny at info (what the caller was not told included), allows only
// at debug, and nothing secret on any line, however a caller names the field.
import { describe, expect, it } from 'vitest';
import { logDecision, REDACTED_PATHS } from '../../../src/telemetry/log.js';
import type { Decision } from '../../../src/vocabulary/index.js';
import { captureLog as capture } from '../../support/logs.js';

const audienceMismatch: Decision = {
  reason: 'audience_mismatch',
  detail: 'the token is for https://other.example.com, not https://gateway.example.com',
  revision: 'rev-1',
  route: 'create_transaction',
};
const scopeMissing: Decision = {
  reason: 'scope_missing',
  detail: 'route create_transaction requires INV_TRANSACTION_READ',
  revision: 'rev-1',
  route: 'create_transaction',
  subject: 'svc-inventory-sync',
  client: 'inventory-sync',
  issuer: 'https://dev-issuer.scopegate.local/',
  missing: { permissions: ['INV_TRANSACTION_READ'], scopes: ['inventory.read'] },
};
const allowed: Decision = {
  reason: 'allowed',
  detail: 'allowed',
  revision: 'rev-1',
  route: 'list_transactions',
  subject: 'svc-inventory-sync',
};

describe('logDecision', () => {
  it('a deny is one info line with who, where, what was missing, the detail and the time in ms', () => {
    const { log, lines } = capture('info');
    logDecision(log, scopeMissing, 'deny', 'req-42', 0.00123456);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'info',
      service: 'scopegate',
      msg: 'decision',
      request_id: 'req-42',
      decision: 'deny',
      reason: 'scope_missing',
      route: 'create_transaction',
      subject: 'svc-inventory-sync',
      client: 'inventory-sync',
      issuer: 'https://dev-issuer.scopegate.local/',
      missing: { permissions: ['INV_TRANSACTION_READ'], scopes: ['inventory.read'] },
      detail: 'route create_transaction requires INV_TRANSACTION_READ',
      policy_revision: 'rev-1',
      duration_ms: 1.235,
    });
    expect(new Date(String(lines[0]!.time)).toISOString()).toBe(lines[0]!.time);
  });

  it('the line says what a 401 does not: the detail naming the audience', () => {
    const { log, lines } = capture('info');
    logDecision(log, audienceMismatch, 'deny', 'req-43', 0.0001);
    expect(lines[0]?.detail).toContain('https://gateway.example.com');
  });

  it('a dry-run deny is logged at info like a deny, labelled dry_run_deny', () => {
    const { log, lines } = capture('info');
    logDecision(log, { ...scopeMissing, dryRun: true }, 'dry_run_deny', 'req-44', 0.0001);
    expect(lines).toEqual([expect.objectContaining({ level: 'info', decision: 'dry_run_deny' })]);
  });

  it('an allow is not logged at info; at debug it is, as a debug line', () => {
    const atInfo = capture('info');
    logDecision(atInfo.log, allowed, 'allow', 'req-45', 0.0001);
    expect(atInfo.lines).toEqual([]);
    const atDebug = capture('debug');
    logDecision(atDebug.log, allowed, 'allow', 'req-45', 0.0001);
    expect(atDebug.lines).toEqual([
      expect.objectContaining({ level: 'debug', decision: 'allow', reason: 'allowed', request_id: 'req-45' }),
    ]);
  });

  it('above info (warn, silent) nothing is logged, not even a deny', () => {
    for (const level of ['warn', 'silent'] as const) {
      const { log, lines } = capture(level);
      logDecision(log, scopeMissing, 'deny', 'req-46', 0.0001);
      logDecision(log, allowed, 'allow', 'req-46', 0.0001);
      expect(lines, level).toEqual([]);
    }
  });
});

describe('redaction', () => {
  const SECRET = 'eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2lnbmF0dXJl';

  it('censors tokens, Authorization headers, bodies and keys at the top and one level down', () => {
    const { log, lines, text } = capture('info');
    log.info(
      {
        token: SECRET,
        authorization: `Bearer ${SECRET}`,
        body: `{"secret":"${SECRET}"}`,
        key: SECRET,
        jwk: { d: SECRET },
        headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' },
        request: {
          token: SECRET,
          body: SECRET,
          authorization: SECRET,
          headers: { authorization: SECRET },
          key: SECRET,
          jwk: SECRET,
        },
      },
      'request seen',
    );
    expect(text.join('\n')).not.toContain(SECRET);
    expect(lines[0]).toMatchObject({
      token: '[redacted]',
      authorization: '[redacted]',
      body: '[redacted]',
      key: '[redacted]',
      jwk: '[redacted]',
      headers: { authorization: '[redacted]', 'content-type': 'application/json' },
      request: {
        token: '[redacted]',
        body: '[redacted]',
        authorization: '[redacted]',
        headers: { authorization: '[redacted]' },
        key: '[redacted]',
        jwk: '[redacted]',
      },
    });
  });

  it('every redacted path is one of the fields that can hold a secret', () => {
    const fields = new Set(REDACTED_PATHS.map((path) => path.split('.').at(-1)));
    expect([...fields].sort()).toEqual(['authorization', 'body', 'jwk', 'key', 'token']);
  });
});

describe('logDecision: joined to the trace', () => {
  it("a deny line carries the Check span's trace_id and span_id when tracing is on, none when off", () => {
    const { log, lines } = capture('info');
    const span = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' };
    logDecision(log, scopeMissing, 'deny', 'req-42', 0.001, span);
    logDecision(log, scopeMissing, 'dry_run_deny', 'req-43', 0.001, span);
    logDecision(log, scopeMissing, 'deny', 'req-44', 0.001);
    expect(lines[0]).toMatchObject({ request_id: 'req-42', trace_id: span.traceId, span_id: span.spanId });
    expect(lines[1]).toMatchObject({
      decision: 'dry_run_deny',
      trace_id: span.traceId,
      span_id: span.spanId,
    });
    expect(lines[2]).not.toHaveProperty('trace_id');
  });
});
