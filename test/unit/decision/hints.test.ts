import { describe, expect, it } from 'vitest';
import { fixHints } from '../../../src/decision/hints.js';
import { REASON_CODES } from '../../../src/vocabulary/index.js';

describe('fix hints in the user’s words', () => {
  it('POST with only inventory.write: request scope inventory.read as well', () => {
    expect(fixHints('scope_missing', { scopes: ['inventory.read'] })).toEqual([
      'request scope inventory.read as well',
    ]);
  });

  it('client never granted the scope: allow client inventory-sync the scope inventory.write', () => {
    expect(
      fixHints('client_scope_not_allowed', { scopes: ['inventory.write'] }, { client: 'inventory-sync' }),
    ).toEqual(['allow client inventory-sync the scope inventory.write']);
  });

  it('missing role: give svc-inventory-sync the role Inventory Transaction Manager', () => {
    expect(
      fixHints(
        'role_missing',
        { roles: ['Inventory Transaction Manager'] },
        { subject: 'svc-inventory-sync' },
      ),
    ).toEqual(['give svc-inventory-sync the role Inventory Transaction Manager']);
  });

  it('warehouse refused: grant location WH03', () => {
    expect(fixHints('location_denied', { locations: ['WH03'] }, { subject: 'svc-inventory-sync' })).toEqual([
      'grant location WH03 to svc-inventory-sync',
    ]);
  });

  it('wrong grant type names the grant to use', () => {
    expect(fixHints('grant_type_not_allowed', { grantTypes: ['client_credentials'] })[0]).toContain(
      'client_credentials grant',
    );
  });

  it('every deny reason has at least one hint, and allow has none', () => {
    for (const reason of REASON_CODES) {
      expect(fixHints(reason, undefined).length > 0).toBe(reason !== 'allowed');
    }
  });
});
