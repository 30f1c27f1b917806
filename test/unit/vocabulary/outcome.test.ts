// What a phase returns: ok(value) or deny(reason, detail, what was missing). The shapes are read by field
// everywhere (`if (!result.ok) return result`), so they carry exactly these fields and nothing else.
import { describe, expect, it } from 'vitest';
import { deny, ok } from '../../../src/vocabulary/outcome.js';

describe('ok', () => {
  it('carries the very value it was given', () => {
    const value = { subject: 'svc-inventory-sync' };
    const result = ok(value);
    expect(result).toStrictEqual({ ok: true, value });
    expect(result.value).toBe(value);
  });
});

describe('deny', () => {
  it('is a closed reason and a sentence, with no missing fields unless given', () => {
    expect(deny('token_missing', 'no bearer token')).toStrictEqual({
      ok: false,
      reason: 'token_missing',
      detail: 'no bearer token',
    });
  });

  it('names what was missing, and by which source, when told', () => {
    const denial = deny('scope_missing', 'route create_transaction requires INV_TRANSACTION_READ', {
      missing: { permissions: ['INV_TRANSACTION_READ'], scopes: ['inventory.read'] },
      missingBySource: [{ permission: 'INV_TRANSACTION_READ', source: 'scope' }],
    });
    expect(denial).toStrictEqual({
      ok: false,
      reason: 'scope_missing',
      detail: 'route create_transaction requires INV_TRANSACTION_READ',
      missing: { permissions: ['INV_TRANSACTION_READ'], scopes: ['inventory.read'] },
      missingBySource: [{ permission: 'INV_TRANSACTION_READ', source: 'scope' }],
    });
  });
});
