// Converts a protobuf Struct, as @grpc/proto-loader decodes it, into plain JSON. Envoy's jwt_authn filter
// hands us the claims it verified in this shape; the identity phase wants ordinary objects and arrays.
import type { ProtoStruct, ProtoValue } from '../wire/types.js';

/** Deeper than this and the payload is refused: no real token nests claims this far. */
export const MAX_STRUCT_DEPTH = 32;

export type StructResult =
  | { readonly ok: true; readonly value: Record<string, unknown> }
  | {
      readonly ok: false;
      readonly problem: string;
    };

type Converted = { ok: true; value: unknown } | { ok: false; problem: string };

/**
 * A Struct as a null-prototype object (so a claim named `__proto__` is just a key). Numbers stay numbers,
 * `null_value` becomes null. Fails (never throws) past `maxDepth` levels or on a Value with no kind.
 */
export function structToJson(struct: ProtoStruct | undefined, maxDepth = MAX_STRUCT_DEPTH): StructResult {
  const converted = convertStruct(struct, 1, maxDepth);
  if (!converted.ok) return converted;
  return { ok: true, value: converted.value as Record<string, unknown> };
}

/** One Value as plain JSON (exported for callers holding a single `google.protobuf.Value`). */
export function valueToJson(value: ProtoValue | undefined, maxDepth = MAX_STRUCT_DEPTH): Converted {
  return convertValue(value, 1, maxDepth);
}

function convertStruct(struct: ProtoStruct | undefined, depth: number, maxDepth: number): Converted {
  if (depth > maxDepth) return { ok: false, problem: `the struct nests deeper than ${maxDepth} levels` };
  const out: Record<string, unknown> = Object.create(null);
  for (const [key, value] of Object.entries(struct?.fields ?? {})) {
    const converted = convertValue(value, depth, maxDepth);
    if (!converted.ok) return converted;
    out[key] = converted.value;
  }
  return { ok: true, value: out };
}

function convertValue(value: ProtoValue | undefined, depth: number, maxDepth: number): Converted {
  switch (kindOf(value)) {
    case 'null_value':
      return { ok: true, value: null };
    case 'number_value':
      return { ok: true, value: Number(value?.number_value) };
    case 'string_value':
      return { ok: true, value: String(value?.string_value) };
    case 'bool_value':
      return { ok: true, value: value?.bool_value === true };
    case 'struct_value':
      return convertStruct(value?.struct_value, depth + 1, maxDepth);
    case 'list_value': {
      if (depth + 1 > maxDepth)
        return { ok: false, problem: `the struct nests deeper than ${maxDepth} levels` };
      const items: unknown[] = [];
      for (const item of value?.list_value?.values ?? []) {
        const converted = convertValue(item, depth + 1, maxDepth);
        if (!converted.ok) return converted;
        items.push(converted.value);
      }
      return { ok: true, value: items };
    }
    default:
      return { ok: false, problem: 'a struct value has no kind' };
  }
}

/**
 * proto-loader names the set oneof member in `kind` when `oneofs: true`; without it, the member that is
 * present is the one that was set (proto3 omits the others unless `defaults: true`, hence `kind` first).
 */
function kindOf(value: ProtoValue | undefined): ProtoValue['kind'] | undefined {
  if (value === undefined || value === null) return undefined;
  if (value.kind !== undefined) return value.kind;
  if (value.struct_value !== undefined && value.struct_value !== null) return 'struct_value';
  if (value.list_value !== undefined && value.list_value !== null) return 'list_value';
  if (value.string_value !== undefined) return 'string_value';
  if (value.number_value !== undefined) return 'number_value';
  if (value.bool_value !== undefined) return 'bool_value';
  if (value.null_value !== undefined) return 'null_value';
  return undefined;
}
