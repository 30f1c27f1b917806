import { describe, expect, it } from 'vitest';
import { toCheckResponse, wwwAuthenticate } from '../../../src/response/encode.js';
import type { Decision } from '../../../src/vocabulary/index.js';
import { REASON_CODES, REASONS, type Reason } from '../../../src/vocabulary/index.js';

const context = { requestId: 'req-1', realm: 'inventory', requestHeaderNames: [] as string[] };
const decision = (reason: Reason, more: Partial<Decision> = {}): Decision => ({
  reason,
  detail: `detail for ${reason}`,
  revision: 'abc123',
  ...more,
});
const header = (response: ReturnType<typeof toCheckResponse>, name: string) =>
  response.denied_response?.headers?.find((h) => h.header.key === name)?.header.value;

// DESIGN.md's reasons table, written out independently of src/decision/reasons.ts.
const DESIGN_TABLE: Record<Reason, { http: number; grpc: number; challenge: string | null }> = {
  allowed: { http: 200, grpc: 0, challenge: null },
  token_missing: { http: 401, grpc: 16, challenge: 'bare' },
  request_malformed: { http: 400, grpc: 7, challenge: 'invalid_request' },
  token_invalid: { http: 401, grpc: 16, challenge: 'invalid_token' },
  key_unknown: { http: 401, grpc: 16, challenge: 'invalid_token' },
  token_expired: { http: 401, grpc: 16, challenge: 'invalid_token' },
  token_not_yet_valid: { http: 401, grpc: 16, challenge: 'invalid_token' },
  issuer_untrusted: { http: 401, grpc: 16, challenge: 'invalid_token' },
  audience_mismatch: { http: 401, grpc: 16, challenge: 'invalid_token' },
  scope_missing: { http: 403, grpc: 7, challenge: 'insufficient_scope' },
  client_scope_not_allowed: { http: 403, grpc: 7, challenge: 'insufficient_scope' },
  client_unknown: { http: 403, grpc: 7, challenge: null },
  peer_missing: { http: 403, grpc: 7, challenge: null },
  peer_not_allowed: { http: 403, grpc: 7, challenge: null },
  policy_unknown: { http: 403, grpc: 7, challenge: null },
  grant_type_not_allowed: { http: 403, grpc: 7, challenge: null },
  role_missing: { http: 403, grpc: 7, challenge: null },
  location_denied: { http: 403, grpc: 7, challenge: null },
  location_missing: { http: 403, grpc: 7, challenge: null },
  body_unreadable: { http: 403, grpc: 7, challenge: null },
  route_unknown: { http: 403, grpc: 7, challenge: null },
  keys_unavailable: { http: 503, grpc: 14, challenge: null },
  internal_error: { http: 503, grpc: 14, challenge: null },
};

describe('every reason answers as DESIGN.md says', () => {
  it('the code has exactly the reasons of the design table', () => {
    expect([...REASON_CODES].sort()).toEqual(Object.keys(DESIGN_TABLE).sort());
  });

  for (const reason of REASON_CODES.filter((r) => r !== 'allowed')) {
    it(`${reason}: denied_response with HTTP ${DESIGN_TABLE[reason].http}, never ok_response`, () => {
      const expected = DESIGN_TABLE[reason];
      const response = toCheckResponse(
        decision(reason, { missing: { scopes: ['inventory.read'] } }),
        context,
      );
      expect(response.status.code).toBe(expected.grpc);
      expect(response.ok_response).toBeUndefined();
      expect(response.denied_response?.status.code).toBe(expected.http);
      const challenge = header(response, 'www-authenticate');
      if (expected.challenge === null) expect(challenge).toBeUndefined();
      else if (expected.challenge === 'bare') expect(challenge).toBe('Bearer realm="inventory"');
      else expect(challenge).toContain(`error="${expected.challenge}"`);
      const body = JSON.parse(response.denied_response?.body ?? '{}');
      expect(body).toMatchObject({ reason, request_id: 'req-1' });
      expect(typeof body.error).toBe('string');
      expect(response.dynamic_metadata?.fields?.reason?.string_value).toBe(reason);
      expect(response.dynamic_metadata?.fields?.decision?.string_value).toBe('deny');
    });
  }
});

describe('RFC 6750 challenges and bodies', () => {
  it('insufficient_scope names the scope that would grant the permission', () => {
    const denied = decision('scope_missing', {
      policy: 'inventory',
      route: 'create_transaction',
      missing: { permissions: ['INV_TRANSACTION_READ'], scopes: ['inventory.read'] },
    });
    expect(wwwAuthenticate(denied, 'inventory')).toBe(
      'Bearer realm="inventory", error="insufficient_scope", ' +
        'error_description="The access token lacks a scope this request needs.", scope="inventory.read"',
    );
    const body = JSON.parse(toCheckResponse(denied, context).denied_response!.body!);
    expect(body).toEqual({
      error: 'insufficient_scope',
      error_description: 'detail for scope_missing',
      reason: 'scope_missing',
      policy: 'inventory',
      route: 'create_transaction',
      request_id: 'req-1',
      missing: { permissions: ['INV_TRANSACTION_READ'], scopes: ['inventory.read'] },
    });
  });

  it('an expired token is 401 invalid_token, never insufficient_scope (the support thread’s mix-up)', () => {
    const response = toCheckResponse(decision('token_expired', { route: 'create_transaction' }), context);
    expect(header(response, 'www-authenticate')).toContain('error="invalid_token"');
    expect(header(response, 'www-authenticate')).not.toContain('insufficient_scope');
    const body = JSON.parse(response.denied_response!.body!);
    expect(body.error).toBe('invalid_token');
    // Not authenticated yet: the body names no route of the policy.
    expect(body.route).toBeNull();
  });

  it('quotes and control characters cannot break out of the challenge', () => {
    const hostile = decision('scope_missing', { missing: { scopes: ['a"b\\c\r\nd'] } });
    const challenge = wwwAuthenticate(hostile, 'in"ventory')!;
    expect(challenge).not.toMatch(/[\r\n\\]/);
    expect(challenge.match(/"/g)?.length).toBe(8);
  });

  it('503s tell Envoy’s clients to retry', () => {
    expect(header(toCheckResponse(decision('keys_unavailable'), context), 'retry-after')).toBe('1');
  });
});

describe('allow', () => {
  const allowed = decision('allowed', {
    route: 'create_transaction',
    subject: 'svc-inventory-sync',
    client: 'inventory-sync',
  });

  it('sets identity headers for the upstream, overwriting in both Envoy dialects', () => {
    const response = toCheckResponse(allowed, context);
    expect(response.status.code).toBe(0);
    expect(response.denied_response).toBeUndefined();
    expect(response.ok_response?.headers).toEqual(
      ['x-scopegate-subject', 'x-scopegate-client', 'x-scopegate-route'].map((key, i) => ({
        header: { key, value: ['svc-inventory-sync', 'inventory-sync', 'create_transaction'][i] },
        append: { value: false },
        append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
      })),
    );
  });

  it('removes client-sent x-scopegate-* headers it does not overwrite', () => {
    const noClient = decision('allowed', { route: 'r', subject: 's' });
    const response = toCheckResponse(noClient, {
      ...context,
      requestHeaderNames: ['x-scopegate-subject', 'x-scopegate-client', 'x-scopegate-admin', 'authorization'],
    });
    expect(response.ok_response?.headers_to_remove?.sort()).toEqual([
      'x-scopegate-admin',
      'x-scopegate-client',
    ]);
  });

  it('removes the underscore spelling too, which CGI-style upstreams read as the same header', () => {
    const response = toCheckResponse(decision('allowed', { route: 'r', subject: 's' }), {
      ...context,
      requestHeaderNames: ['x_scopegate_client', 'x_scopegate_subject', 'x-scopegate_route', 'x_scopegatex'],
    });
    expect(response.ok_response?.headers_to_remove?.sort()).toEqual([
      'x-scopegate_route',
      'x_scopegate_client',
      'x_scopegate_subject',
    ]);
  });

  it('never rewrites an identity: one a header cannot carry verbatim is a bug, and throws (then internal_error)', () => {
    for (const subject of ['a\ud800b', 'admin\r\nx-evil: 1', 'stock-report\u0000', ' svc', 'svc\u0085']) {
      expect(() => toCheckResponse(decision('allowed', { route: 'r', subject }), context)).toThrow(
        /verbatim/,
      );
    }
  });

  it('sends the issuer, and a non-ASCII identity exactly as it is (its UTF-8 bytes on the wire)', () => {
    const response = toCheckResponse(
      decision('allowed', { route: 'r', subject: 'josé', client: 'app', issuer: 'https://idp.example/' }),
      context,
    );
    const sent = new Map(response.ok_response?.headers?.map((h) => [h.header.key, h.header]));
    expect(sent.get('x-scopegate-subject')).toEqual({ key: 'x-scopegate-subject', value: 'josé' });
    expect(sent.get('x-scopegate-client')).toEqual({ key: 'x-scopegate-client', value: 'app' });
    expect(sent.get('x-scopegate-issuer')?.value).toBe('https://idp.example/');
  });

  it('puts decision, reason, route and subject in dynamic metadata for access logs', () => {
    const fields = toCheckResponse(allowed, context).dynamic_metadata?.fields;
    expect(fields?.decision?.string_value).toBe('allow');
    expect(fields?.reason?.string_value).toBe('allowed');
    expect(fields?.route?.string_value).toBe('create_transaction');
    expect(fields?.subject?.string_value).toBe('svc-inventory-sync');
  });
});

describe('the policy that decided (policy sets)', () => {
  it('an allow tells the upstream and the access log which policy decided', () => {
    const response = toCheckResponse(
      decision('allowed', { route: 'r', subject: 's', policy: 'shipments' }),
      context,
    );
    const sent = new Map(response.ok_response?.headers?.map((h) => [h.header.key, h.header.value]));
    expect(sent.get('x-scopegate-policy')).toBe('shipments');
    expect(response.dynamic_metadata?.fields?.policy?.string_value).toBe('shipments');
  });

  it('a 403 names it in the body; a 401 does not (its caller is not authenticated)', () => {
    const body = (d: Decision) => JSON.parse(toCheckResponse(d, context).denied_response!.body!);
    expect(body(decision('role_missing', { policy: 'shipments', route: 'r' })).policy).toBe('shipments');
    expect(body(decision('token_expired', { policy: 'shipments', route: 'r' })).policy).toBeNull();
    const unowned = toCheckResponse(decision('policy_unknown', { revision: '' }), context);
    expect(JSON.parse(unowned.denied_response!.body!)).toMatchObject({
      error: 'access_denied',
      reason: 'policy_unknown',
      policy: null,
      route: null,
    });
    expect(unowned.denied_response?.status?.code).toBe(403);
    expect(header(unowned, 'www-authenticate')).toBeUndefined();
    expect(unowned.dynamic_metadata?.fields?.policy).toBeUndefined();
  });
});

// Fix hints in deny bodies: off by default (a 403 body then says what is missing, not how to get it), on
// when the operator asks, and never for 401/400 answers, whose caller is not authenticated.
describe('hints in deny bodies', () => {
  const bodyOf = (decision: Decision, hints?: boolean) =>
    JSON.parse(
      toCheckResponse(decision, { ...context, ...(hints !== undefined && { hints }) }).denied_response!.body!,
    ) as Record<string, unknown>;

  const roleMissing: Decision = {
    reason: 'role_missing',
    detail: 'svc-new-integration has no role granting INV_TRANSACTION_CREATE on route create_transaction',
    revision: 'abc123',
    route: 'create_transaction',
    subject: 'svc-new-integration',
    client: 'inventory-sync',
    missing: { permissions: ['INV_TRANSACTION_CREATE'], roles: ['Inventory Transaction Manager'] },
  };

  it('are off by default: the body names what is missing but no fix', () => {
    const body = bodyOf(roleMissing);
    expect(body.error_description).toBe(roleMissing.detail);
    expect(body).not.toHaveProperty('hints');
    expect(bodyOf(roleMissing, false)).toEqual(body);
  });

  it('when on, a 403 gets the fix in hints and at the end of error_description', () => {
    const body = bodyOf(roleMissing, true);
    expect(body.hints).toEqual(['give svc-new-integration the role Inventory Transaction Manager']);
    expect(body.error_description).toBe(
      `${roleMissing.detail}; to fix: give svc-new-integration the role Inventory Transaction Manager`,
    );
  });

  it('when on, the scope fix reaches a scope_missing caller', () => {
    const body = bodyOf(
      {
        reason: 'scope_missing',
        detail: 'route create_transaction requires INV_TRANSACTION_READ',
        revision: 'abc123',
        missing: { scopes: ['inventory.read'] },
      },
      true,
    );
    expect(body.hints).toEqual(['request scope inventory.read as well']);
  });

  for (const reason of [
    'token_expired',
    'token_missing',
    'request_malformed',
    'audience_mismatch',
  ] as const) {
    it(`never for ${reason} (no policy internals to a caller who is not authenticated)`, () => {
      const decision: Decision = { reason, detail: `detail for ${reason}`, revision: 'abc123' };
      const body = bodyOf(decision, true);
      expect(body).not.toHaveProperty('hints');
      // Not even the detail: it may name the policy's audiences, algorithms or fields (security rule 10).
      expect(body.error_description).toBe(REASONS[reason].summary);
    });
  }
});
