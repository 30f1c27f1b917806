// Replays the bad-input corpus over real gRPC against one scopegate (example policy, real JWKS server on
// loopback): every hostile input gets exactly the reason DESIGN.md's table gives it, as a CheckResponse
// (never a gRPC error Envoy could fail open on), and the server still serves the support thread afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isReason, REASONS } from '../../src/vocabulary/index.js';
import { type Harness, startHarness } from '../support/scopegate.js';
import { CORPUS, type CorpusContext, type CorpusGroup, corpusContext, expectedReasons } from './corpus.js';

let h: Harness;
let ctx: CorpusContext;
beforeAll(async () => {
  h = await startHarness();
  ctx = await corpusContext(h.key);
});
afterAll(async () => h?.close());

describe('the corpus itself', () => {
  it('names every vector uniquely, so a failure says which input it was', () => {
    const names = CORPUS.map((vector) => vector.name);
    expect(names.filter((name, i) => names.indexOf(name) !== i)).toEqual([]);
  });

  it('covers every group with hostile inputs and with harmless variants that must stay allowed', () => {
    const groups: CorpusGroup[] = ['token', 'header', 'path', 'body', 'request', 'peer'];
    for (const group of groups) {
      const inGroup = CORPUS.filter((vector) => vector.group === group);
      expect(
        inGroup.some((vector) => !expectedReasons(vector).includes('allowed')),
        group,
      ).toBe(true);
      expect(
        inGroup.some((vector) => expectedReasons(vector).includes('allowed')),
        group,
      ).toBe(true);
    }
  });

  it('expects only reasons from the closed table', () => {
    const unknown = CORPUS.flatMap((vector) => expectedReasons(vector)).filter((reason) => !isReason(reason));
    expect(unknown).toEqual([]);
  });
});

describe('each vector over real gRPC', () => {
  for (const vector of CORPUS) {
    it(`${vector.group}: ${vector.name} → ${expectedReasons(vector).join(' | ')}`, async () => {
      const request = await vector.request(ctx);
      // A gRPC error rejects here, failing the test: the answer must be a CheckResponse.
      const answer = await h.sendRaw(request);
      expect(expectedReasons(vector)).toContain(answer.reason);
      const spec = REASONS[answer.reason as keyof typeof REASONS];
      expect(answer.status).toBe(spec.http);
      expect(answer.grpcCode).toBe(spec.grpc);
      if (answer.reason === 'allowed') {
        // Allowed requests reach the upstream with our identity headers, never a client's spelling of them.
        if (vector.allowedAsPeer !== undefined) {
          expect(answer.headers.get('x-scopegate-peer')).toBe(vector.allowedAsPeer);
          expect(answer.headers.has('x-scopegate-subject')).toBe(false);
        } else {
          expect(answer.headers.get('x-scopegate-subject')).toBe(vector.allowedAs ?? 'svc-inventory-sync');
        }
      } else {
        expect(answer.body?.reason).toBe(answer.reason);
      }
    });
  }
});

describe('after the whole corpus', () => {
  it('a spoofed x-scopegate-subject is replaced, and the spoofed headers are removed', async () => {
    const vector = CORPUS.find((v) => v.name.startsWith('spoofed x-scopegate-* headers'));
    if (vector === undefined) throw new Error('the corpus lost its spoofed-header vector');
    const answer = await h.sendRaw(await vector.request(ctx));
    expect(answer.headers.get('x-scopegate-subject')).toBe('svc-inventory-sync');
    expect(answer.headers.get('x-scopegate-client')).toBe('inventory-sync');
    expect(answer.headersToRemove).toContain('x-scopegate-reason');
  });

  it('the server still serves the support thread: the POST with both scopes is allowed', async () => {
    const answer = await h.send({
      method: 'POST',
      path: '/api/inventory/transactions',
      token: await h.syncToken('inventory.read inventory.write'),
      headers: [['content-type', 'application/json']],
      body: '{"location":"WH01","item":"ITEM001","quantity":10}',
    });
    expect(answer.status).toBe(200);
    expect(answer.reason).toBe('allowed');
  });
});
