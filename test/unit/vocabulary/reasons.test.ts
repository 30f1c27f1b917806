// The reasons table's columns, read the way the rest of the code reads them (specOf, reasonsWhere): which
// reason lets a request through, which ones dry-run mode may never waive, which ones are scopegate failing
// rather than the caller. Each column is asked of the table, never of a list kept beside it.
import { describe, expect, it } from 'vitest';
import {
  GrpcCode,
  isReason,
  REASON_CODES,
  REASONS,
  type Reason,
  reasonsWhere,
  specOf,
} from '../../../src/vocabulary/reasons.js';

describe('what each reason does to the request', () => {
  it('only `allowed` allows', () => {
    expect(REASON_CODES.filter((reason) => specOf(reason).allows)).toEqual(['allowed']);
  });

  it('request_malformed, policy_unknown and internal_error are enforced even under mode: dry_run, and nothing else is', () => {
    // policy_unknown has no policy whose mode could waive it.
    expect(reasonsWhere('alwaysEnforced')).toEqual(['request_malformed', 'policy_unknown', 'internal_error']);
  });

  it('keys_unavailable and internal_error are scopegate failing closed, and nothing else is', () => {
    expect(reasonsWhere('failClosed')).toEqual(['keys_unavailable', 'internal_error']);
  });

  it('a fail-closed reason is a retryable 503 (UNAVAILABLE), and every 503 is fail-closed', () => {
    for (const reason of REASON_CODES) {
      const spec = specOf(reason);
      expect(spec.http === 503, reason).toBe(spec.failClosed === true);
      if (spec.failClosed) {
        expect(spec.grpc, reason).toBe(GrpcCode.UNAVAILABLE);
        expect(spec.error, reason).toBe('temporarily_unavailable');
      }
    }
  });
});

describe('the answer columns agree with each other', () => {
  it('the gRPC status follows the HTTP status: 401 UNAUTHENTICATED, 400/403 PERMISSION_DENIED, 503 UNAVAILABLE', () => {
    const grpcFor: Record<number, number> = {
      200: GrpcCode.OK,
      400: GrpcCode.PERMISSION_DENIED,
      401: GrpcCode.UNAUTHENTICATED,
      403: GrpcCode.PERMISSION_DENIED,
      503: GrpcCode.UNAVAILABLE,
    };
    for (const reason of REASON_CODES) expect(specOf(reason).grpc, reason).toBe(grpcFor[specOf(reason).http]);
  });

  it('every deny has a body error code and a one-sentence summary; the allow has no error code', () => {
    for (const reason of REASON_CODES) {
      const { error, summary } = specOf(reason);
      expect(error === null, reason).toBe(reason === 'allowed');
      expect(summary, reason).toMatch(/^[A-Z][^\n]*\.$/);
    }
  });

  it('an insufficient_scope challenge only on a 403, an invalid_token one only on a 401', () => {
    for (const reason of REASON_CODES) {
      const { challenge, http } = specOf(reason);
      if (challenge === 'insufficient_scope') expect(http, reason).toBe(403);
      if (challenge === 'invalid_token' || challenge === 'bare') expect(http, reason).toBe(401);
    }
  });
});

describe('isReason and specOf', () => {
  it('knows every reason in the table, and nothing else, not even what every object has', () => {
    for (const reason of REASON_CODES) expect(isReason(reason)).toBe(true);
    for (const text of ['', 'ALLOWED', 'allow', 'toString', 'constructor', '__proto__', 'hasOwnProperty'])
      expect(isReason(text), text).toBe(false);
  });

  it('REASON_CODES lists the table in order, and specOf reads its row', () => {
    expect(REASON_CODES).toEqual(Object.keys(REASONS));
    expect(REASON_CODES[0]).toBe('allowed');
    for (const reason of REASON_CODES) expect(specOf(reason)).toBe(REASONS[reason as Reason]);
  });

  it('reasonsWhere never names allowed, and follows the table order', () => {
    for (const property of ['alwaysEnforced', 'failClosed'] as const) {
      const found = reasonsWhere(property);
      expect(found).not.toContain('allowed');
      expect(found).toEqual(REASON_CODES.filter((reason) => found.includes(reason as never)));
    }
  });
});
