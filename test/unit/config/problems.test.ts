// How every config file's problems are said: FILE:LINE:COL: field: message, field paths a person can find,
// and "did you mean" only for a likely typo.
import { describe, expect, test } from 'vitest';
import {
  closest,
  editDistance,
  fieldPath,
  formatProblem,
  inFileOrder,
  unknownMessage,
} from '../../../src/config/problems.js';

describe('formatProblem', () => {
  test('FILE:LINE:COL: field: message', () => {
    expect(
      formatProblem({
        file: 'policy.yaml',
        line: 15,
        col: 19,
        field: 'routes[0].permissions[0]',
        message: 'x',
      }),
    ).toBe('policy.yaml:15:19: routes[0].permissions[0]: x');
  });

  test('a problem about the whole file has no field', () => {
    expect(formatProblem({ file: 'cases.yaml', line: 1, col: 1, field: '', message: 'too large' })).toBe(
      'cases.yaml:1:1: too large',
    );
  });
});

describe('inFileOrder', () => {
  test('sorts by line then column, keeping the order of problems at one place', () => {
    const at = (line: number, col: number, message: string) => ({ file: 'f', line, col, field: '', message });
    const sorted = inFileOrder([at(3, 1, 'c'), at(1, 5, 'b1'), at(1, 2, 'a'), at(1, 5, 'b2')]);
    expect(sorted.map((p) => p.message)).toEqual(['a', 'b1', 'b2', 'c']);
  });
});

describe('fieldPath', () => {
  test.each([
    ['routes', 2, 'routes[2]'],
    ['', 'version', 'version'],
    ['authentication', 'issuers', 'authentication.issuers'],
    ['scopes', 'inventory.read', 'scopes["inventory.read"]'],
    ['roles', 'Inventory Data Reader', 'roles["Inventory Data Reader"]'],
    ['subjects', '__proto__', 'subjects.__proto__'],
    ['', '9lives', '["9lives"]'],
  ])('%s + %s is %s', (parent, key, path) => {
    expect(fieldPath(parent, key)).toBe(path);
  });
});

describe('did you mean', () => {
  test('one typo away suggests the known name', () => {
    expect(closest('INV_TRANSACTON_READ', ['INV_TRANSACTION_READ', 'INV_TRANSACTION_CREATE'])).toBe(
      'INV_TRANSACTION_READ',
    );
    expect(closest('permision', ['name', 'method', 'path', 'permissions'])).toBe('permissions');
  });

  test('a difference in case only is the closest of all', () => {
    expect(closest('rs256', ['RS256', 'rs384'])).toBe('RS256');
    expect(closest('post', ['PUT', 'POST', 'PATCH'])).toBe('POST');
  });

  test('nothing is suggested when nothing is close', () => {
    expect(closest('tenant', ['name', 'method', 'path', 'permissions'])).toBeUndefined();
    expect(closest('x', [])).toBeUndefined();
  });

  test('the allowed distance grows with the name: 1 for short names, at most 3', () => {
    expect(closest('ab', ['xy'])).toBeUndefined();
    expect(closest('ab', ['ax'])).toBe('ax');
    expect(closest('abcdefghijkl', ['abcdefghiXYZ'])).toBe('abcdefghiXYZ');
    expect(closest('abcdefghijkl', ['abcdefghWXYZ'])).toBeUndefined();
  });

  test('ties go to the first name in code-point order, whatever the order given', () => {
    expect(closest('cat', ['hat', 'bat'])).toBe('bat');
    expect(closest('cat', ['bat', 'hat'])).toBe('bat');
  });

  test('very long names are never typos (the distance is quadratic)', () => {
    const long = 'a'.repeat(129);
    expect(closest(long, [`${long}b`])).toBeUndefined();
    expect(closest('a', ['b'.repeat(129)])).toBeUndefined();
  });

  test('editDistance counts insertions, deletions and substitutions', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('same', 'same')).toBe(0);
    // Past a length difference of 3 the difference itself is answered, uncomputed.
    expect(editDistance('a', 'abcdefgh')).toBe(7);
  });

  test('unknownMessage suggests, or lists the choices when asked, or says only what is unknown', () => {
    expect(unknownMessage('mode', 'enforse', ['enforce', 'dry_run'], true)).toBe(
      'unknown mode "enforse"; did you mean "enforce"?',
    );
    expect(unknownMessage('mode', 'audit', ['enforce', 'dry_run'], true)).toBe(
      'unknown mode "audit"; expected one of enforce, dry_run',
    );
    expect(unknownMessage('permission', 'INV_AUDIT', ['INV_TRANSACTION_READ'], false)).toBe(
      'unknown permission "INV_AUDIT"',
    );
  });
});
