import { describe, expect, it } from 'vitest';
import { BODY_HEADER, denyInHeaders, STATUS_HEADER } from '../../../src/response/http-reply.js';

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
