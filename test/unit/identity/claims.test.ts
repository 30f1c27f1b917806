import { describe, expect, it } from 'vitest';
import { CLAIM_LIMITS, principalFromClaims } from '../../../src/identity/claims.js';
import { CLAIM_NAMES } from './fixtures.js';

describe('principalFromClaims: the caller as the policy names things', () => {
  it('reads the service account from the support thread: subject, client, grant type, scopes', () => {
    const result = principalFromClaims(
      {
        sub: 'svc-inventory-sync',
        client_id: 'inventory-sync',
        gty: 'client_credentials',
        scope: 'inventory.read inventory.write',
        exp: 1_900_000_000,
      },
      CLAIM_NAMES,
      'https://idp.example.test/',
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value.subject).toBe('svc-inventory-sync');
    expect(result.value.client).toBe('inventory-sync');
    expect(result.value.grantType).toBe('client_credentials');
    expect([...result.value.scopes]).toEqual(['inventory.read', 'inventory.write']);
    expect(result.value.issuer).toBe('https://idp.example.test/');
    expect(result.value.expiresAt).toBe(1_900_000_000);
  });

  it('a claim with a lone surrogate is token_invalid (it could not be put on the wire as UTF-8)', () => {
    for (const claims of [
      { sub: 'a\ud800b' },
      { sub: 'a', scope: 'inventory.read \udc00' },
      { sub: 'a', roles: ['\ud800'] },
    ]) {
      expect(principalFromClaims(claims, CLAIM_NAMES)).toMatchObject({ ok: false, reason: 'token_invalid' });
    }
  });

  it.each([
    ['a NUL after the name', 'stock-report\u0000'],
    ['a trailing space', 'svc-inventory-sync '],
    ['a leading tab', '\tsvc-inventory-sync'],
    ['a newline inside', 'svc\ninventory'],
    ['DEL', 'svc\u007f'],
    ['a C1 control (NEL)', 'svc\u0085x'],
    ['a trailing no-break space', 'svc-inventory-sync\u00a0'],
    ['a leading ideographic space', '\u3000svc'],
  ])('an identity with %s is token_invalid, never trimmed into another name', (_, value) => {
    for (const claims of [
      { sub: value },
      { sub: 'a', client_id: value },
      { sub: 'a', gty: value },
      { sub: 'a', roles: [value] },
      { sub: 'a', locations: [value] },
      { sub: 'a', scp: [value] },
    ]) {
      expect(principalFromClaims(claims, CLAIM_NAMES)).toMatchObject({ ok: false, reason: 'token_invalid' });
    }
    expect(principalFromClaims({ sub: 'a' }, CLAIM_NAMES, value)).toMatchObject({
      ok: false,
      reason: 'token_invalid',
    });
  });

  it('printable non-ASCII and inner spaces stay exactly as the token says', () => {
    const result = principalFromClaims(
      { sub: 'josé', client_id: 'größe-app', roles: ['Inventory Data Reader'] },
      CLAIM_NAMES,
      'https://idp.example.test/',
    );
    expect(result.ok && result.value.subject).toBe('josé');
    expect(result.ok && result.value.client).toBe('größe-app');
    expect(result.ok && [...result.value.roles]).toEqual(['Inventory Data Reader']);
  });

  it('reads scopes from an array claim (scp) when no scope string is present', () => {
    const result = principalFromClaims({ sub: 'a', scp: ['inventory.read', 'inventory.write'] }, CLAIM_NAMES);
    expect(result.ok && [...result.value.scopes]).toEqual(['inventory.read', 'inventory.write']);
  });

  it('the first present claim name wins (scope before scp), and a null one is skipped', () => {
    const both = principalFromClaims(
      { sub: 'a', scope: 'inventory.read', scp: ['inventory.write'] },
      CLAIM_NAMES,
    );
    expect(both.ok && [...both.value.scopes]).toEqual(['inventory.read']);
    const nullFirst = principalFromClaims({ sub: 'a', scope: null, scp: ['inventory.write'] }, CLAIM_NAMES);
    expect(nullFirst.ok && [...nullFirst.value.scopes]).toEqual(['inventory.write']);
    const client = principalFromClaims({ sub: 'a', azp: 'from-azp' }, CLAIM_NAMES);
    expect(client.ok && client.value.client).toBe('from-azp');
  });

  it('extra spaces in a scope string do not make empty scopes', () => {
    const result = principalFromClaims({ sub: 'a', scope: ' inventory.read  inventory.write ' }, CLAIM_NAMES);
    expect(result.ok && [...result.value.scopes]).toEqual(['inventory.read', 'inventory.write']);
  });

  it('no scope claim means no scopes, not an error', () => {
    const result = principalFromClaims({ sub: 'a' }, CLAIM_NAMES);
    expect(result.ok && result.value.scopes.size).toBe(0);
    expect(result.ok && result.value.client).toBeUndefined();
  });

  it('a role with spaces stays one role; roles and locations may be a string or an array', () => {
    const single = principalFromClaims(
      { sub: 'a', roles: 'Inventory Data Reader', locations: 'WH01' },
      CLAIM_NAMES,
    );
    expect(single.ok && [...single.value.roles]).toEqual(['Inventory Data Reader']);
    expect(single.ok && single.value.locations).toEqual(['WH01']);
    const list = principalFromClaims(
      {
        sub: 'a',
        roles: ['Inventory Transaction Manager', 'Inventory Data Reader'],
        locations: ['WH01', 'WH02'],
      },
      CLAIM_NAMES,
    );
    expect(list.ok && [...list.value.roles]).toEqual([
      'Inventory Transaction Manager',
      'Inventory Data Reader',
    ]);
    expect(list.ok && list.value.locations).toEqual(['WH01', 'WH02']);
  });

  it('reads a nested claim by dotted name (Keycloak realm_access.roles)', () => {
    const names = { ...CLAIM_NAMES, roles: ['realm_access.roles'] };
    const result = principalFromClaims(
      { sub: 'a', realm_access: { roles: ['Inventory Data Reader'] } },
      names,
    );
    expect(result.ok && [...result.value.roles]).toEqual(['Inventory Data Reader']);
  });

  it('never reads inherited properties as claims', () => {
    const names = { ...CLAIM_NAMES, client: ['constructor'], roles: ['toString'] };
    const result = principalFromClaims({ sub: 'a' }, names);
    expect(result.ok && result.value.client).toBeUndefined();
    expect(result.ok && result.value.roles.size).toBe(0);
  });

  it.each([
    ['a number', 42],
    ['an object', { read: true }],
    ['an array with a non-string', ['inventory.read', 7]],
    ['boolean', true],
  ])('a scope claim that is %s is token_invalid naming the expected shape', (_, scope) => {
    const result = principalFromClaims({ sub: 'a', scope }, CLAIM_NAMES);
    expect(result).toMatchObject({ ok: false, reason: 'token_invalid' });
    expect(!result.ok && result.detail).toContain('claim scope must be');
  });

  it('roles that are an object are token_invalid', () => {
    expect(principalFromClaims({ sub: 'a', roles: { admin: true } }, CLAIM_NAMES)).toMatchObject({
      ok: false,
      reason: 'token_invalid',
    });
  });

  it.each([
    ['missing', {}],
    ['empty', { sub: '' }],
    ['a number', { sub: 12 }],
  ])('a subject that is %s is token_invalid', (_, claims) => {
    expect(principalFromClaims(claims, CLAIM_NAMES)).toMatchObject({ ok: false, reason: 'token_invalid' });
  });

  it('a client id that is not a string is token_invalid', () => {
    expect(principalFromClaims({ sub: 'a', client_id: ['x'] }, CLAIM_NAMES)).toMatchObject({
      ok: false,
      reason: 'token_invalid',
    });
  });

  it('caps how many scopes a token may carry', () => {
    const many = Array.from({ length: CLAIM_LIMITS.maxValues + 1 }, (_, i) => `s${i}`);
    expect(principalFromClaims({ sub: 'a', scp: many }, CLAIM_NAMES)).toMatchObject({
      ok: false,
      reason: 'token_invalid',
    });
    expect(principalFromClaims({ sub: 'a', scope: many.join(' ') }, CLAIM_NAMES)).toMatchObject({
      ok: false,
      reason: 'token_invalid',
    });
    expect(principalFromClaims({ sub: 'a', scp: many.slice(1) }, CLAIM_NAMES).ok).toBe(true);
  });

  it('caps the length of one value', () => {
    const long = 'x'.repeat(CLAIM_LIMITS.maxValueLength + 1);
    expect(principalFromClaims({ sub: 'a', roles: [long] }, CLAIM_NAMES)).toMatchObject({
      ok: false,
      reason: 'token_invalid',
    });
    expect(principalFromClaims({ sub: 'x'.repeat(CLAIM_LIMITS.maxIdLength + 1) }, CLAIM_NAMES)).toMatchObject(
      {
        ok: false,
        reason: 'token_invalid',
      },
    );
  });

  it('leaves expiresAt out when exp is not a number', () => {
    const result = principalFromClaims({ sub: 'a', exp: 'tomorrow' }, CLAIM_NAMES);
    expect(result.ok && result.value.expiresAt).toBeUndefined();
  });
});
