// The compiled policy answers the questions a deny has to explain: which scopes or roles would grant a
// missing permission, what a client may use, where a service account may write — and it cannot change.
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { type CompiledPolicy, locationAllowed, parsePolicy } from '../../../src/policy/index.js';
import { DESIGN_SAMPLE, LIST_ROUTE, policy } from './fixtures.js';

function compiled(text: string, file = '/etc/scopegate/policy.yaml', opts = {}): CompiledPolicy {
  const result = parsePolicy(text, file, opts);
  if (!result.ok) throw new Error(`policy should be valid: ${JSON.stringify(result.problems)}`);
  return result.policy;
}

describe('compiled policy', () => {
  test('scopesGranting names, sorted, every scope that grants a permission', () => {
    const text = DESIGN_SAMPLE.replace(
      '  inventory.write: [INV_TRANSACTION_CREATE, INV_TRANSACTION_UPDATE]\n',
      '  inventory.write: [INV_TRANSACTION_CREATE, INV_TRANSACTION_UPDATE]\n  inventory.admin: [INV_TRANSACTION_CREATE, INV_TRANSACTION_READ]\n',
    );
    const p = compiled(text);
    expect(p.scopesGranting.get('INV_TRANSACTION_READ')).toEqual(['inventory.admin', 'inventory.read']);
    expect(p.scopesGranting.get('INV_TRANSACTION_CREATE')).toEqual(['inventory.admin', 'inventory.write']);
    expect(p.scopesGranting.get('INV_TRANSACTION_UPDATE')).toEqual(['inventory.write']);
    expect(p.scopesGranting.get('INV_UNKNOWN')).toBeUndefined();
    expect([...(p.scopes.get('inventory.write') ?? [])].sort()).toEqual([
      'INV_TRANSACTION_CREATE',
      'INV_TRANSACTION_UPDATE',
    ]);
  });

  test('rolesGranting names the roles that grant a permission (the service account case)', () => {
    const p = compiled(DESIGN_SAMPLE);
    expect(p.rolesGranting.get('INV_TRANSACTION_READ')).toEqual(['Inventory Data Reader']);
    expect(p.rolesGranting.get('INV_TRANSACTION_CREATE')).toEqual(['Inventory Transaction Manager']);
    expect(p.roles?.get('Inventory Data Reader')?.has('INV_TRANSACTION_READ')).toBe(true);
  });

  test('without a roles section, roles are not checked: roles is undefined and nothing is granted by a role', () => {
    const p = compiled(policy('', LIST_ROUTE));
    expect(p.roles).toBeUndefined();
    expect(p.rolesGranting.size).toBe(0);
  });

  test('clients keep their allowed scopes and grant types; no grantTypes means any', () => {
    const p = compiled(
      policy(
        'clients:\n  inventory-sync: { scopes: [inventory.read, inventory.write], grantTypes: [client_credentials] }\n  portal: { scopes: [inventory.read] }\n',
        LIST_ROUTE,
      ),
    );
    const sync = p.clients.get(IDP, 'inventory-sync');
    expect([...(sync?.scopes ?? [])]).toEqual(['inventory.read', 'inventory.write']);
    expect(sync?.grantTypes?.has('client_credentials')).toBe(true);
    expect(sync?.grantTypes?.has('authorization_code')).toBe(false);
    expect(p.clients.get(IDP, 'portal')?.grantTypes).toBeUndefined();
    expect(p.clients.get(IDP, 'unknown')).toBeUndefined();
  });

  test("a subject's locations allow exact codes and EU-* prefixes, nothing else", () => {
    const svc = compiled(DESIGN_SAMPLE).subjects.get(IDP, 'svc-inventory-sync');
    if (!svc) throw new Error('subject missing');
    expect(svc.roles.has('Inventory Transaction Manager')).toBe(true);
    expect(locationAllowed(svc.locations, 'WH01')).toBe(true);
    expect(locationAllowed(svc.locations, 'WH02')).toBe(true);
    expect(locationAllowed(svc.locations, 'EU-AMS1')).toBe(true);
    expect(locationAllowed(svc.locations, 'WH99')).toBe(false);
    expect(locationAllowed(svc.locations, 'WH0')).toBe(false);
    expect(locationAllowed(svc.locations, 'US-NYC1')).toBe(false);
    expect(locationAllowed(svc.locations, 'eu-ams1')).toBe(false);
  });

  test('defaults are filled in: realm, token size, clock tolerance, claim names', () => {
    const p = compiled(policy('', LIST_ROUTE));
    expect(p.realm).toBe('scopegate');
    expect(p.maxTokenBytes).toBe(8192);
    expect(p.issuers[0]?.clockToleranceSeconds).toBe(30);
    expect(p.claims).toEqual({
      subject: ['sub'],
      scopes: ['scope', 'scp'],
      roles: ['roles'],
      client: ['client_id', 'azp'],
      grantType: ['gty'],
      locations: ['locations'],
    });
    expect(p.issuerByName.get('https://idp.example.com/')?.jwks).toEqual({
      uri: 'https://idp.example.com/jwks.json',
    });
  });

  test('configured values replace the defaults', () => {
    const text = policy('', LIST_ROUTE)
      .replace(
        'authentication:\n',
        'authentication:\n  realm: inventory\n  maxTokenBytes: 16384\n  claims:\n    subject: [oid, sub]\n',
      )
      .replace('algorithms: [RS256]', 'algorithms: [RS256]\n      clockToleranceSeconds: 0');
    const p = compiled(text);
    expect(p.realm).toBe('inventory');
    expect(p.maxTokenBytes).toBe(16384);
    expect(p.issuers[0]?.clockToleranceSeconds).toBe(0);
    expect(p.claims.subject).toEqual(['oid', 'sub']);
    expect(p.claims.scopes).toEqual(['scope', 'scp']);
  });

  test("a relative jwks.file is resolved against the policy file's directory, or baseDir when given", () => {
    expect(compiled(DESIGN_SAMPLE, '/etc/scopegate/policy.yaml').issuers[0]?.jwks).toEqual({
      file: '/etc/scopegate/jwks.json',
    });
    expect(
      compiled(DESIGN_SAMPLE, '/etc/scopegate/policy.yaml', { baseDir: '/srv/keys' }).issuers[0]?.jwks,
    ).toEqual({
      file: '/srv/keys/jwks.json',
    });
    const absolute = DESIGN_SAMPLE.replace('{ file: ./jwks.json }', '{ file: /var/run/jwks.json }');
    expect(compiled(absolute).issuers[0]?.jwks).toEqual({ file: '/var/run/jwks.json' });
  });

  test('the revision is the first 12 hex chars of the sha256 of the text, and changes with the content', () => {
    const p = compiled(DESIGN_SAMPLE);
    expect(p.revision).toBe(createHash('sha256').update(DESIGN_SAMPLE).digest('hex').slice(0, 12));
    expect(p.revision).toMatch(/^[0-9a-f]{12}$/);
    expect(compiled(`${DESIGN_SAMPLE}# a comment\n`).revision).not.toBe(p.revision);
    expect(compiled(DESIGN_SAMPLE).revision).toBe(p.revision);
    expect(compiled(DESIGN_SAMPLE, 'p.yaml', { sourceRevision: 'cm-v7' }).revision).toBe('cm-v7');
    expect(p.source).toBe('/etc/scopegate/policy.yaml');
  });

  test('routes keep policy order, methods as lists and their location source', () => {
    const p = compiled(DESIGN_SAMPLE);
    expect(p.routes.map((r) => [r.name, r.index, r.methods])).toEqual([
      ['create_transaction', 0, ['POST']],
      ['update_transaction', 1, ['PUT']],
      ['list_location_items', 2, ['GET']],
    ]);
    expect(p.routes[0]?.location).toEqual({ body: 'location', steps: [{ key: 'location', each: false }] });
    expect(p.routes[2]?.location).toEqual({ path: 'location' });
    expect(p.routes[0]?.permissions).toEqual(['INV_TRANSACTION_CREATE', 'INV_TRANSACTION_READ']);
  });

  test('the compiled policy is frozen: nobody can change a policy revision after the fact', () => {
    const p = compiled(DESIGN_SAMPLE);
    expect(Object.isFrozen(p)).toBe(true);
    expect(Object.isFrozen(p.routes)).toBe(true);
    expect(Object.isFrozen(p.routes[0])).toBe(true);
    expect(Object.isFrozen(p.routes[0]?.permissions)).toBe(true);
    expect(Object.isFrozen(p.issuers[0]?.algorithms)).toBe(true);
    expect(Object.isFrozen(p.claims.scopes)).toBe(true);
    expect(Object.isFrozen(p.scopesGranting.get('INV_TRANSACTION_READ'))).toBe(true);
    expect(() => (p.routes[0]!.permissions as string[]).push('EXTRA')).toThrow(TypeError);
  });

  test('a subject or client named "__proto__" is an ordinary entry, not a prototype change', () => {
    const p = compiled(
      policy(
        'clients:\n  __proto__: { scopes: [inventory.read] }\nsubjects:\n  __proto__: { locations: [WH01] }\n',
        LIST_ROUTE,
      ),
    );
    expect([...(p.clients.get(IDP, '__proto__')?.scopes ?? [])]).toEqual(['inventory.read']);
    expect(locationAllowed(p.subjects.get(IDP, '__proto__')!.locations, 'WH01')).toBe(true);
    expect(p.clients.get(IDP, 'toString')).toBeUndefined();
  });
});

const IDP = 'https://idp.example.com/';
