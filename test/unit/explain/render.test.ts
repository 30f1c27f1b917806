// explain and test print to a terminal what a hostile token or request carried: nothing in it may move the
// cursor, clear the screen or reorder a line, so the NOT VERIFIED warning can never be hidden.
import { describe, expect, it } from 'vitest';
import { NOT_VERIFIED_WARNING, renderTrace, terminalSafe, traceJson } from '../../../src/explain/render.js';
import type { Trace } from '../../../src/explain/trace.js';

const CLEAR_SCREEN = '\u001b[2J\u001b[H';
const HOSTILE = [
  CLEAR_SCREEN,
  '\u009b2J', // 8-bit CSI
  '\r\u001b[1A\u001b[K', // back up a line and erase it
  '\u202eevil\u202c', // right-to-left override
  '\u2028',
  '\u0007',
];
// biome-ignore lint/suspicious/noControlCharactersInRegex: the characters that must never be printed raw
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;

const hostileTrace = (text: string): Trace => ({
  door: 'grpc',
  policy: {
    chosen: true,
    name: 'policy',
    file: 'policy.yaml',
    revision: 'abc123def456',
    chosenBy: 'only policy',
  },
  credential: 'token',
  verified: false,
  warnings: [NOT_VERIFIED_WARNING],
  needs: 'token',
  request: { ok: true, method: 'POST', path: `/api/${text}`, requestId: 'r-1' },
  identity: { ok: true, subject: `svc${text}`, client: `app${text}`, issuer: 'https://idp.example/' },
  route: { matched: false },
  decision: 'deny',
  reason: 'route_unknown',
  status: 403,
  detail: `no route for ${text}`,
  hints: [`give svc${text} a route`],
  alsoNeeded: [],
});

describe('explain output is safe to print, whatever the token said', () => {
  it.each(HOSTILE)('escapes %j as \\uXXXX', (text) => {
    const shown = terminalSafe(`a${text}b`);
    expect(shown).not.toMatch(UNSAFE);
    expect(shown).toMatch(/^a(\\u[0-9a-f]{4}|[^\\])*b$/);
  });

  it('shows printable non-ASCII as it is', () => {
    expect(terminalSafe('josé ✓ Größe')).toBe('josé ✓ Größe');
  });

  it('the text rendering carries no control sequence, and NOT VERIFIED stays the first line', () => {
    for (const text of HOSTILE) {
      const out = renderTrace(hostileTrace(text));
      expect(out).not.toMatch(UNSAFE);
      expect(out.split('\n')[0]).toBe(NOT_VERIFIED_WARNING);
      expect(out).toContain('svc\\u');
    }
  });

  it('--json escapes C1 and bidirectional controls too, and still parses to the same values', () => {
    for (const text of HOSTILE) {
      const trace = hostileTrace(text);
      const json = traceJson(trace);
      expect(json).not.toMatch(UNSAFE);
      expect(JSON.parse(json)).toEqual(trace);
    }
  });
});
