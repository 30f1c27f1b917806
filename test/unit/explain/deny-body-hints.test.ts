// Fix hints in deny bodies: off by default (a 403 body then says what is missing, not how to get it), on
// when the operator asks, and never for 401/400 answers, whose caller is not authenticated.
import { describe, expect, it } from 'vitest';
import { toCheckResponse } from '../../../src/response/encode.js';
import type { Decision } from '../../../src/vocabulary/index.js';
import { REASONS } from '../../../src/vocabulary/index.js';

const context = { requestId: 'req-1', realm: 'inventory', requestHeaderNames: [] as string[] };
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

describe('hints in deny bodies', () => {
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
