import { describe, expect, it } from 'vitest';
import { answerFor } from '../../../src/response/answer.js';
import { type ResponseContext, toCheckResponse } from '../../../src/response/encode.js';
import {
  BODY_HEADER,
  denyInHeaders,
  httpReplyFor,
  httpReplyOf,
  STATUS_HEADER,
} from '../../../src/response/http-reply.js';
import { SplicedDeny } from '../../../src/response/kept.js';
import type { Decision, KeptAnswer } from '../../../src/vocabulary/index.js';

describe('denyInHeaders (nginx auth_request)', () => {
  it('answers a 503 as 403 with the real status and the same JSON value in headers, in ASCII', () => {
    const body = JSON.stringify({
      reason: 'keys_unavailable',
      error_description: 'Lager \u00e4 \u{1f4e6}\u007f',
    });
    const reply = denyInHeaders({
      status: 503,
      headers: [
        ['x-scopegate-reason', 'keys_unavailable'],
        ['retry-after', '1'],
      ],
      body,
    });
    expect(reply.status).toBe(403);
    const headers = new Map(reply.headers);
    expect(headers.get(STATUS_HEADER)).toBe('503');
    expect(headers.get('retry-after')).toBe('1');
    const carried = headers.get(BODY_HEADER)!;
    expect(carried).toMatch(/^[\x20-\x7e]+$/);
    expect(JSON.parse(carried)).toEqual(JSON.parse(body));
    expect(reply.body).toBe(body);
  });

  it('leaves an allow as it is', () => {
    const allow = { status: 200, headers: [['x-scopegate-subject', 'svc'] as const], body: '' };
    expect(denyInHeaders(allow)).toBe(allow);
  });
});

describe('httpReplyFor a kept deny', () => {
  const decision = (kept: KeptAnswer): Decision => ({
    reason: 'role_missing',
    detail: 'svc-new-integration has no role granting INV_TRANSACTION_CREATE',
    policy: 'inventory',
    revision: 'rev-1',
    route: 'create_transaction',
    subject: 'svc-new-integration',
    client: 'new-integration',
    missing: { permissions: ['INV_TRANSACTION_CREATE'], roles: ['Inventory Transaction Manager'] },
    kept,
  });
  const context = (requestId: string): ResponseContext => ({
    requestId,
    realm: 'inventory',
    requestHeaderNames: ['authorization'],
  });

  it('is the reply of the fresh answer, each request with its own id, the head laid out once', () => {
    const kept: KeptAnswer = {};
    const replies = ['r-1', 'r-2'].map((id) => {
      const answer = answerFor(decision(kept), context(id));
      expect(answer).toBeInstanceOf(SplicedDeny);
      const reply = httpReplyFor(answer);
      expect(reply).toEqual(httpReplyOf(toCheckResponse(decision(kept), context(id))));
      expect(JSON.parse(reply.body).request_id).toBe(id);
      return reply;
    });
    expect(replies[0]!.status).toBe(403);
    expect(replies[1]!.headers).toBe(replies[0]!.headers);
  });
});
