// A request matches the first route, in policy order, whose method and path template fit its canonical
// path — the trie must decide exactly as a linear first-match scan would, however many routes there are.
import { describe, expect, test } from 'vitest';
import type { CompiledRoute } from '../../../src/policy/index.js';
import { buildRouteMatcher, MAX_PATH_SEGMENTS, parsePolicy } from '../../../src/policy/index.js';
import { policy } from './fixtures.js';

function routes(...specs: [name: string, methods: string[], path: string][]): CompiledRoute[] {
  return specs.map(([name, methods, path], index) => ({
    name,
    index,
    methods,
    path,
    permissions: ['P'],
    mode: 'enforce' as const,
    identity: 'token' as const,
  }));
}

describe('route matching', () => {
  test('first match wins: /t/{id} listed before /t/special takes /t/special', () => {
    const match = buildRouteMatcher(
      routes(['by_id', ['GET'], '/t/{id}'], ['special', ['GET'], '/t/special']),
    );
    const found = match('GET', '/t/special');
    expect(found?.route.name).toBe('by_id');
    expect(found?.params).toEqual({ id: 'special' });
  });

  test('first match wins: /t/special listed before /t/{id} takes /t/special, /t/other still goes to {id}', () => {
    const match = buildRouteMatcher(
      routes(['special', ['GET'], '/t/special'], ['by_id', ['GET'], '/t/{id}']),
    );
    expect(match('GET', '/t/special')?.route.name).toBe('special');
    expect(match('GET', '/t/special')?.params).toEqual({});
    expect(match('GET', '/t/other')?.params).toEqual({ id: 'other' });
  });

  test('a literal branch that dead-ends falls back to the parameter branch', () => {
    const match = buildRouteMatcher(
      routes(['param_then_c', ['GET'], '/a/{x}/c'], ['literal_b_d', ['GET'], '/a/b/d']),
    );
    expect(match('GET', '/a/b/c')?.route.name).toBe('param_then_c');
    expect(match('GET', '/a/b/c')?.params).toEqual({ x: 'b' });
    expect(match('GET', '/a/b/d')?.route.name).toBe('literal_b_d');
  });

  test('the lowest route index wins across branches, not the most literal template', () => {
    const literalFirst = buildRouteMatcher(
      routes(['b_then_param', ['GET'], '/a/b/{y}'], ['param_then_c', ['GET'], '/a/{x}/c']),
    );
    expect(literalFirst('GET', '/a/b/c')?.route.name).toBe('b_then_param');
    expect(literalFirst('GET', '/a/b/c')?.params).toEqual({ y: 'c' });
    const paramFirst = buildRouteMatcher(
      routes(['param_then_c', ['GET'], '/a/{x}/c'], ['b_then_param', ['GET'], '/a/b/{y}']),
    );
    expect(paramFirst('GET', '/a/b/c')?.route.name).toBe('param_then_c');
    expect(paramFirst('GET', '/a/b/c')?.params).toEqual({ x: 'b' });
  });

  test('parameters are returned exactly as the already-decoded path has them', () => {
    const match = buildRouteMatcher(
      routes(['item', ['GET'], '/api/inventory/locations/{location}/items/{sku}']),
    );
    expect(match('GET', '/api/inventory/locations/Entrepôt Nord/items/100%')?.params).toEqual({
      location: 'Entrepôt Nord',
      sku: '100%',
    });
  });

  test('a method list matches each of its methods and nothing else', () => {
    const match = buildRouteMatcher(
      routes(['read', ['GET', 'HEAD'], '/items'], ['write', ['POST'], '/items']),
    );
    expect(match('GET', '/items')?.route.name).toBe('read');
    expect(match('HEAD', '/items')?.route.name).toBe('read');
    expect(match('POST', '/items')?.route.name).toBe('write');
    expect(match('PUT', '/items')).toBeUndefined();
  });

  test('the root template matches only /', () => {
    const match = buildRouteMatcher(routes(['root', ['GET'], '/'], ['any', ['GET'], '/{x}']));
    expect(match('GET', '/')?.route.name).toBe('root');
    expect(match('GET', '/a')?.route.name).toBe('any');
  });

  test('paths that are longer, shorter or different match nothing', () => {
    const match = buildRouteMatcher(routes(['tx', ['PUT'], '/api/inventory/transactions/{id}']));
    expect(match('PUT', '/api/inventory/transactions')).toBeUndefined();
    expect(match('PUT', '/api/inventory/transactions/1/lines')).toBeUndefined();
    expect(match('PUT', '/api/inventory/Transactions/1')).toBeUndefined();
    expect(match('PUT', 'api/inventory/transactions/1')).toBeUndefined();
  });

  test(`a path with more than ${MAX_PATH_SEGMENTS} segments matches nothing`, () => {
    const template = '/' + Array.from({ length: MAX_PATH_SEGMENTS }, (_, i) => `{p${i}}`).join('/');
    const match = buildRouteMatcher(routes(['deep', ['GET'], template]));
    expect(match('GET', '/x'.repeat(MAX_PATH_SEGMENTS))?.route.name).toBe('deep');
    expect(match('GET', '/x'.repeat(MAX_PATH_SEGMENTS + 1))).toBeUndefined();
  });

  test('the compiled policy matches routes the same way (DESIGN sample routes)', () => {
    const text = policy(
      '',
      `  - name: create_transaction
    method: POST
    path: /api/inventory/transactions
    permissions: [INV_TRANSACTION_CREATE, INV_TRANSACTION_READ]
  - name: update_transaction
    method: PUT
    path: /api/inventory/transactions/{id}
    permissions: [INV_TRANSACTION_UPDATE, INV_TRANSACTION_READ]
`,
    );
    const result = parsePolicy(text, 'policy.yaml');
    if (!result.ok) throw new Error('policy should be valid');
    expect(result.policy.matchRoute('POST', '/api/inventory/transactions')?.route.name).toBe(
      'create_transaction',
    );
    const put = result.policy.matchRoute('PUT', '/api/inventory/transactions/T-42');
    expect(put?.route.name).toBe('update_transaction');
    expect(put?.route.index).toBe(1);
    expect(put?.params).toEqual({ id: 'T-42' });
    expect(result.policy.matchRoute('DELETE', '/api/inventory/transactions/T-42')).toBeUndefined();
  });
});

describe('10,000 routes', () => {
  // A linear first-match scan: the obviously correct matcher the trie must agree with.
  function linearMatch(all: CompiledRoute[], method: string, path: string): string | undefined {
    const segments = path === '/' ? [] : path.slice(1).split('/');
    for (const route of all) {
      if (!route.methods.includes(method)) continue;
      const template = route.path === '/' ? [] : route.path.slice(1).split('/');
      if (template.length !== segments.length) continue;
      if (template.every((t, i) => t.startsWith('{') || t === segments[i])) return route.name;
    }
    return undefined;
  }

  // A deterministic generator, so a failure can be reproduced.
  function prng(seed: number): () => number {
    let s = seed;
    return () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s / 2147483648;
    };
  }

  test('the trie agrees with a linear first-match scan on many paths', () => {
    const random = prng(42);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const words = ['a', 'b', 'c', 'items', 'special', 'x1', 'WH01'];
    const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
    const all: CompiledRoute[] = [];
    for (let i = 0; i < 10_000; i++) {
      const depth = 1 + Math.floor(random() * 5);
      const parts = Array.from({ length: depth }, (_, d) =>
        random() < 0.3 ? `{p${d}}` : random() < 0.5 ? pick(words) : `s${Math.floor(random() * 50)}`,
      );
      const routeMethods = random() < 0.2 ? [pick(methods), pick(methods)] : [pick(methods)];
      all.push({
        name: `r${i}`,
        index: i,
        methods: [...new Set(routeMethods)],
        path: '/' + parts.join('/'),
        permissions: ['P'],
        mode: 'enforce',
        identity: 'token',
      });
    }
    const match = buildRouteMatcher(all);

    let matched = 0;
    for (let i = 0; i < 5_000; i++) {
      const depth = 1 + Math.floor(random() * 5);
      const path =
        '/' +
        Array.from({ length: depth }, () =>
          random() < 0.5 ? pick(words) : `s${Math.floor(random() * 50)}`,
        ).join('/');
      const method = pick(methods);
      const expected = linearMatch(all, method, path);
      expect(match(method, path)?.route.name, `${method} ${path}`).toBe(expected);
      if (expected) matched++;
    }
    // The comparison means something only if plenty of lookups actually hit a route.
    expect(matched).toBeGreaterThan(500);
  });

  test('among 10,000 routes, the one specific route is found with its parameters', () => {
    const all: CompiledRoute[] = [];
    for (let i = 0; i < 10_000; i++) {
      all.push({
        name: `tenant_${i}`,
        index: i,
        methods: ['GET'],
        path: `/tenants/t${i}/items/{sku}`,
        permissions: ['P'],
        mode: 'enforce',
        identity: 'token',
      });
    }
    all.push({
      name: 'catch_all',
      index: 10_000,
      methods: ['GET'],
      path: '/tenants/{tenant}/items/{sku}',
      permissions: ['P'],
      mode: 'enforce',
      identity: 'token',
    });
    const match = buildRouteMatcher(all);
    expect(match('GET', '/tenants/t9999/items/ABC')?.route.name).toBe('tenant_9999');
    expect(match('GET', '/tenants/t9999/items/ABC')?.params).toEqual({ sku: 'ABC' });
    expect(match('GET', '/tenants/t10000/items/ABC')?.route.name).toBe('catch_all');
    expect(match('GET', '/tenants/t10000/items/ABC')?.params).toEqual({ tenant: 't10000', sku: 'ABC' });
  });
});
