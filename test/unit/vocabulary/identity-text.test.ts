// What may be an identity (subject, client, issuer, role, location): a text that reaches the upstream byte
// for byte in a header value. Printable text in any script may; control characters, whitespace at either end
// and broken Unicode may not, and the refusal says which.
import { describe, expect, it } from 'vitest';
import { identityTextProblem } from '../../../src/vocabulary/identity-text.js';

describe('identityTextProblem', () => {
  it.each([
    'svc-inventory-sync',
    'Inventory Transaction Manager',
    'EU-*',
    'https://dev-issuer.scopegate.local/',
    'josé',
    '倉庫-東京',
    'key 🔑 holder',
  ])('%s may be an identity', (text) => {
    expect(identityTextProblem(text)).toBeUndefined();
  });

  it.each([
    ['svc\u0000', 'NUL'],
    ['svc\ninjected: yes', 'a line feed (header injection)'],
    ['svc\rx', 'a carriage return'],
    ['a\tb', 'a tab inside'],
    ['svc\u007f', 'DEL'],
    ['svc\u0085x', 'C1 NEXT LINE'],
    ['svc\u009f', 'the last C1 control'],
  ])('%j is refused: a control character (%s)', (text) => {
    expect(identityTextProblem(text)).toBe('contains a control character');
  });

  it.each([
    [' svc', 'a leading space'],
    ['svc ', 'a trailing space'],
    ['\u00a0svc', 'a leading no-break space'],
    ['svc\u3000', 'a trailing ideographic space'],
  ])('%j is refused: whitespace at an end (%s)', (text) => {
    expect(identityTextProblem(text)).toBe('starts or ends with whitespace');
  });

  it('a lone surrogate (no UTF-8 form) is refused before anything else is looked at', () => {
    expect(identityTextProblem('svc\ud800')).toBe('is not well-formed Unicode');
    expect(identityTextProblem(' \udfff\n')).toBe('is not well-formed Unicode');
  });

  it('a control character at an end is named as a control character', () => {
    expect(identityTextProblem('\tsvc')).toBe('contains a control character');
  });
});
