// A deliberately tiny protobuf wire writer and reader for proto.test.ts. It knows nothing of protobufjs or
// of scopegate's .proto files: messages are built and read by field number and wire type only, so a test can
// prove our definitions produce and accept the bytes Envoy's upstream protos describe.
// Wire format: https://protobuf.dev/programming-guides/encoding/

export const WireType = { VARINT: 0, I64: 1, LEN: 2, I32: 5 } as const;
export type WireTypeNumber = (typeof WireType)[keyof typeof WireType];

// ---- writer ----

export function varint(value: number | bigint): Buffer {
  // Negative int32/int64 values are sent as their 64-bit two's complement.
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return Buffer.from(out);
}

function tag(field: number, wire: WireTypeNumber): Buffer {
  return varint((field << 3) | wire);
}

/** Field writers; each returns the complete encoded field (tag + payload). */
export const put = {
  varint: (field: number, value: number | bigint): Buffer =>
    Buffer.concat([tag(field, WireType.VARINT), varint(value)]),
  bool: (field: number, value: boolean): Buffer => put.varint(field, value ? 1 : 0),
  double: (field: number, value: number): Buffer => {
    const payload = Buffer.alloc(8);
    payload.writeDoubleLE(value);
    return Buffer.concat([tag(field, WireType.I64), payload]);
  },
  bytes: (field: number, data: Uint8Array): Buffer =>
    Buffer.concat([tag(field, WireType.LEN), varint(data.length), data]),
  string: (field: number, text: string): Buffer => put.bytes(field, Buffer.from(text, 'utf8')),
  message: (field: number, ...fields: Buffer[]): Buffer => put.bytes(field, Buffer.concat(fields)),
  /** A map<string, V> entry: key is field 1, value is field 2 (already encoded by the caller). */
  mapEntry: (field: number, key: string, encodedValue: Buffer): Buffer =>
    put.message(field, put.string(1, key), encodedValue),
  stringMap: (field: number, entries: Record<string, string>): Buffer =>
    Buffer.concat(Object.entries(entries).map(([k, v]) => put.mapEntry(field, k, put.string(2, v)))),
};

// ---- reader ----

export interface WireField {
  readonly field: number;
  readonly wire: number;
  /** For VARINT. */
  readonly int?: bigint;
  /** For LEN, I64 and I32: the raw payload. */
  readonly data?: Buffer;
}

/** Splits one message into its fields, in wire order. Throws on truncated or unsupported input. */
export function readFields(buf: Uint8Array): WireField[] {
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: WireField[] = [];
  let pos = 0;
  const readVarint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (pos >= bytes.length) throw new Error('truncated varint');
      const byte = bytes[pos++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
    }
    throw new Error('varint too long');
  };
  const take = (length: number): Buffer => {
    if (pos + length > bytes.length) throw new Error('truncated field');
    const data = bytes.subarray(pos, pos + length);
    pos += length;
    return data;
  };
  while (pos < bytes.length) {
    const key = readVarint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === WireType.VARINT) out.push({ field, wire, int: readVarint() });
    else if (wire === WireType.I64) out.push({ field, wire, data: take(8) });
    else if (wire === WireType.LEN) out.push({ field, wire, data: take(Number(readVarint())) });
    else if (wire === WireType.I32) out.push({ field, wire, data: take(4) });
    else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

/** The distinct field numbers present, sorted: what a message "has" on the wire. */
export function fieldNumbers(fields: WireField[]): number[] {
  return [...new Set(fields.map((f) => f.field))].sort((a, b) => a - b);
}

/** Every occurrence of a field, checked to carry the expected wire type. */
export function every(fields: WireField[], field: number, wire: WireTypeNumber): WireField[] {
  const found = fields.filter((f) => f.field === field);
  for (const f of found) {
    if (f.wire !== wire) throw new Error(`field ${field} has wire type ${f.wire}, expected ${wire}`);
  }
  return found;
}

/** Exactly one occurrence of a field with the expected wire type. */
export function single(fields: WireField[], field: number, wire: WireTypeNumber): WireField {
  const found = every(fields, field, wire);
  if (found.length !== 1) throw new Error(`field ${field} occurs ${found.length} times, expected once`);
  return found[0]!;
}

export const get = {
  message: (fields: WireField[], field: number): WireField[] =>
    readFields(single(fields, field, WireType.LEN).data!),
  messages: (fields: WireField[], field: number): WireField[][] =>
    every(fields, field, WireType.LEN).map((f) => readFields(f.data!)),
  string: (fields: WireField[], field: number): string =>
    single(fields, field, WireType.LEN).data!.toString('utf8'),
  strings: (fields: WireField[], field: number): string[] =>
    every(fields, field, WireType.LEN).map((f) => f.data!.toString('utf8')),
  /** A proto3 scalar: absent on the wire means zero. */
  int: (fields: WireField[], field: number): number => {
    const found = every(fields, field, WireType.VARINT);
    return found.length === 0 ? 0 : Number(found.at(-1)!.int);
  },
  double: (fields: WireField[], field: number): number =>
    single(fields, field, WireType.I64).data!.readDoubleLE(0),
};
