// Kept or fresh: a decision the cache keeps carries a slot for its answer, and only then, and only when the
// answer depends on nothing but the decision, is it encoded once and sent as bytes. Whatever path it takes,
// the bytes are the ones protobufjs writes for toCheckResponse: the caller cannot tell the two apart.
import { describe, expect, it } from 'vitest';
import { answerFor } from '../../../src/response/answer.js';
import { type ResponseContext, toCheckResponse } from '../../../src/response/encode.js';
import { EncodedAnswer, serializeAnswer } from '../../../src/response/kept.js';
import type { Decision, KeptAnswer } from '../../../src/vocabulary/index.js';
import { authorizationService } from '../../../src/wire/proto.js';

const encode = authorizationService.Check.responseSerialize;

const context = (requestId: string, more: Partial<ResponseContext> = {}): ResponseContext => ({
  requestId,
  realm: 'inventory',
  requestHeaderNames: ['content-type', 'authorization'],
  ...more,
});

const allow = (kept?: KeptAnswer): Decision => ({
  reason: 'allowed',
  detail: 'allowed',
  revision: 'rev-1',
  route: 'create_transaction',
  subject: 'svc-inventory-sync',
  client: 'inventory-sync',
  ...(kept && { kept }),
});

const roleMissing = (kept?: KeptAnswer, more: Partial<Decision> = {}): Decision => ({
  reason: 'role_missing',
  detail: 'svc-new-integration has no role granting INV_TRANSACTION_CREATE',
  revision: 'rev-1',
  route: 'create_transaction',
  subject: 'svc-new-integration',
  client: 'new-integration',
  missing: { permissions: ['INV_TRANSACTION_CREATE'], roles: ['Inventory Transaction Manager'] },
  ...(kept && { kept }),
  ...more,
});

/** The answer's bytes are exactly protobufjs's encoding of the fresh answer for the same context. */
function expectSameBytes(decision: Decision, c: ResponseContext) {
  const answer = answerFor(decision, c);
  expect(Buffer.compare(serializeAnswer(answer), encode(toCheckResponse(decision, c)))).toBe(0);
  return answer;
}

describe('a decision without a kept slot is answered afresh, every time', () => {
  it('an allow and a deny are built as CheckResponses, never encoded ahead', () => {
    for (const decision of [allow(), roleMissing()]) {
      const answer = expectSameBytes(decision, context('r1'));
      expect(answer).not.toBeInstanceOf(EncodedAnswer);
      expect(answer).toEqual(toCheckResponse(decision, context('r1')));
    }
  });
});

describe('a kept allow', () => {
  it('is encoded once: later requests get the very same bytes', () => {
    const kept: KeptAnswer = {};
    const first = expectSameBytes(allow(kept), context('r1'));
    expect(first).toBeInstanceOf(EncodedAnswer);
    expect(kept.encoded).toBe(first);
    expect(answerFor(allow(kept), context('r2'))).toBe(first);
  });

  it.each(['x-scopegate-policy', 'x_scopegate_route'])(
    'a request that sent its own %s gets a fresh answer that strips it, and the kept one is untouched',
    (name) => {
      const kept: KeptAnswer = {};
      const spoofed = context('r1', { requestHeaderNames: ['content-type', name] });
      const answer = expectSameBytes(allow(kept), spoofed);
      expect(answer).not.toBeInstanceOf(EncodedAnswer);
      expect(answer).toMatchObject({ ok_response: { headers_to_remove: [name] } });
      expect(kept.encoded).toBeUndefined();
      // The next request that sent none is answered from the slot again, and strips nothing.
      const clean = expectSameBytes(allow(kept), context('r2'));
      expect(clean).toBeInstanceOf(EncodedAnswer);
      expect(kept.encoded).toBe(clean);
    },
  );
});

describe('a kept deny', () => {
  it('is encoded around its body: each request gets its own request id, byte for byte', () => {
    const kept: KeptAnswer = {};
    for (const id of ['r1', 'a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d', '']) {
      const answer = expectSameBytes(roleMissing(kept), context(id));
      expect(answer).toBeInstanceOf(EncodedAnswer);
    }
    expect(kept.encoded).toBeDefined();
  });

  it('hints are off unless the context asks, and follow the setting when it changes', () => {
    const kept: KeptAnswer = {};
    const bodyOf = (answer: ReturnType<typeof answerFor>) =>
      JSON.parse(
        authorizationService.Check.responseDeserialize(serializeAnswer(answer)).denied_response!.body!,
      );
    expect(bodyOf(expectSameBytes(roleMissing(kept), context('r1')))).not.toHaveProperty('hints');
    expect(bodyOf(expectSameBytes(roleMissing(kept), context('r2', { hints: true }))).hints).toEqual([
      'give svc-new-integration the role Inventory Transaction Manager',
    ]);
  });
});

describe('a dry-run deny', () => {
  it('goes through like an allow, built afresh even with a kept slot, which it leaves alone', () => {
    const kept: KeptAnswer = {};
    const decision = roleMissing(kept, { dryRun: true });
    const answer = expectSameBytes(decision, context('r1', { requestHeaderNames: ['x-scopegate-subject'] }));
    expect(answer).not.toBeInstanceOf(EncodedAnswer);
    expect(answer).toMatchObject({ status: { code: 0 }, ok_response: {} });
    expect(answer).not.toHaveProperty('denied_response');
    expect(kept.encoded).toBeUndefined();
  });
});
