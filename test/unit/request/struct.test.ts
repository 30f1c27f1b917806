// protobuf Struct → plain JSON, as the identity phase reads Envoy-verified jwt_authn claims.
import { describe, expect, it } from 'vitest';
import { structToJson, valueToJson } from '../../../src/request/struct.js';
import type { ProtoValue } from '../../../src/wire/types.js';

describe('structToJson', () => {
  it('keeps numbers as numbers and turns null_value into null, with or without `kind`', () => {
    const result = structToJson({
      fields: {
        exp: { number_value: 1700000000 },
        zero: { number_value: 0, kind: 'number_value' },
        gone: { null_value: 0 },
        gone2: { null_value: 'NULL_VALUE', kind: 'null_value' },
        no: { bool_value: false },
        empty: { string_value: '' },
        list: { list_value: {} },
        obj: { struct_value: {} },
      },
    });
    expect(result.ok).toBe(true);
    expect(result.ok && JSON.parse(JSON.stringify(result.value))).toEqual({
      exp: 1700000000,
      zero: 0,
      gone: null,
      gone2: null,
      no: false,
      empty: '',
      list: [],
      obj: {},
    });
  });

  it('keeps a claim named __proto__ as a key, not a prototype', () => {
    const result = structToJson({
      fields: { ['__proto__']: { struct_value: { fields: { admin: { bool_value: true } } } } },
    });
    const value = result.ok ? result.value : {};
    expect(Object.getPrototypeOf(value)).toBeNull();
    expect(Object.hasOwn(value, '__proto__')).toBe(true);
    expect((value as { admin?: unknown }).admin).toBeUndefined();
  });

  it('nests 32 levels and refuses 33, lists counting as levels too', () => {
    const nested = (levels: number, wrap: (inner: ProtoValue) => ProtoValue): ProtoValue => {
      let value: ProtoValue = { string_value: 'leaf' };
      for (let i = 1; i < levels; i++) value = wrap(value);
      return value;
    };
    const inStruct = (inner: ProtoValue): ProtoValue => ({ struct_value: { fields: { a: inner } } });
    const inList = (inner: ProtoValue): ProtoValue => ({ list_value: { values: [inner] } });
    expect(structToJson({ fields: { a: nested(32, inStruct) } }).ok).toBe(true);
    const tooDeep = structToJson({ fields: { a: nested(33, inStruct) } });
    expect(!tooDeep.ok && tooDeep.problem).toContain('deeper than 32 levels');
    expect(structToJson({ fields: { a: nested(33, inList) } }).ok).toBe(false);
  });

  it('refuses a value with no kind rather than guessing', () => {
    const result = valueToJson({});
    expect(!result.ok && result.problem).toContain('no kind');
  });
});
