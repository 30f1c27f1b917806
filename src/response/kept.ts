// Answers kept with their decision, already encoded. A decision that answers many requests (one the decision
// cache keeps) carries a slot for its answer (`decision.kept`), so whatever of its answer depends on nothing
// but that decision is built and protobuf-encoded once, not on every Check, and kept as bytes only (a cache
// full of distinct callers holds 10,000 of them):
//   - an allow is kept whole (unless the request sent `x-scopegate-*` headers, which its answer must strip);
//   - a deny is kept as bytes around its body, and each Check splices in only its own request id (encoded
//     only by the gRPC door, which sends bytes).
// The bytes are exactly what protobufjs would encode for the same CheckResponse (a test holds them to that).
import { randomUUID } from 'node:crypto';
import type { KeptAnswer } from '../vocabulary/index.js';
import { authorizationService, type ReceivedCheckResponse } from '../wire/proto.js';
import type { CheckResponse } from '../wire/types.js';

const encodeCheckResponse = authorizationService.Check.responseSerialize;
const decodeCheckResponse = authorizationService.Check.responseDeserialize;

/** An answer as the bytes the server sends. */
export class EncodedAnswer {
  constructor(private readonly encoded: Buffer) {}
  get bytes(): Buffer {
    return this.encoded;
  }
}

/**
 * A kept deny's answer to one request: its decision's template and this request's body. The gRPC door encodes
 * it when it sends it; the HTTP doors lay out the template once (response/http-reply.ts) and add the body.
 */
export class SplicedDeny extends EncodedAnswer {
  constructor(
    readonly template: object,
    readonly body: string,
  ) {
    super(NO_BYTES);
  }
  override get bytes(): Buffer {
    return spliceBody(this.template as DenyTemplate, this.body);
  }
}
const NO_BYTES = Buffer.alloc(0);

/** What the Check path answers: a CheckResponse to encode, or one encoded already. */
export type Answer = CheckResponse | EncodedAnswer;

export function serializeAnswer(answer: Answer): Buffer {
  return answer instanceof EncodedAnswer ? answer.bytes : encodeCheckResponse(answer);
}

/** The answer as a client reads it, for in-process callers (tests, benchmarks): decoded from its bytes. */
export function decodeAnswer(answer: Answer): ReceivedCheckResponse {
  return decodeCheckResponse(serializeAnswer(answer));
}

/**
 * A copy in memory of its own. protobufjs encodes small messages into slices of Node's shared 8 KiB buffer
 * pool, and a kept slice would keep its whole pool block alive: 10,000 kept answers could pin ~80 MiB.
 */
function own(bytes: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  return copy;
}

// Wire tags (field number << 3 | 2, length-delimited) from external_auth.proto.
const DENIED_RESPONSE_TAG = (2 << 3) | 2; // CheckResponse.denied_response
const BODY_TAG = (3 << 3) | 2; // DeniedHttpResponse.body

/** A deny's encoded parts: everything but the body's request id is fixed for its decision. */
interface DenyTemplate {
  /** The body as text before and after the request id. */
  readonly bodyBefore: string;
  readonly bodyAfter: string;
  /** CheckResponse.status, encoded. */
  readonly statusField: Buffer;
  /** DeniedHttpResponse without its body: status and headers, encoded. */
  readonly deniedWithoutBody: Buffer;
  /** CheckResponse.dynamic_metadata, encoded. */
  readonly metadataField: Buffer;
  /** What the template was built for besides the decision; another realm or hint setting builds afresh. */
  readonly realm: string;
  readonly hints: boolean;
}

export interface DenyContext {
  readonly requestId: string;
  readonly realm: string;
  readonly hints: boolean;
}

/** An allow's answer, built (by `build`) and encoded the first time its decision is answered. */
export function keptAllow(kept: KeptAnswer, build: () => CheckResponse): EncodedAnswer {
  if (!(kept.encoded instanceof EncodedAnswer))
    kept.encoded = new EncodedAnswer(own(encodeCheckResponse(build())));
  return kept.encoded as EncodedAnswer;
}

/**
 * A deny's answer for this request id: the template is built (by `build`, given a request id) once per
 * decision, and each call encodes only the body. Falls back to `build` when no template can be made.
 */
export function keptDeny(
  kept: KeptAnswer,
  context: DenyContext,
  build: (requestId: string) => CheckResponse,
): Answer {
  let template = kept.encoded as DenyTemplate | null | undefined;
  if (
    template === undefined ||
    (template && (template.realm !== context.realm || template.hints !== context.hints))
  ) {
    template = makeTemplate(build, context);
    kept.encoded = template;
  }
  if (template === null) return build(context.requestId);
  // Request ids are sanitized to [A-Za-z0-9._:-]; escaped anyway, so the body stays JSON whatever comes in.
  const body = `${template.bodyBefore}${JSON.stringify(context.requestId).slice(1, -1)}${template.bodyAfter}`;
  return new SplicedDeny(template, body);
}

/** null when the built answer is not a deny with exactly one request id in its body. */
function makeTemplate(
  build: (requestId: string) => CheckResponse,
  context: DenyContext,
): DenyTemplate | null {
  const marker = randomUUID();
  const response = build(marker);
  const denied = response.denied_response;
  const parts = denied?.body?.split(marker);
  if (denied === undefined || parts?.length !== 2) return null;
  const { body: _body, ...withoutBody } = denied;
  const deniedField = encodeCheckResponse({ denied_response: withoutBody });
  // One owned buffer for the three parts (see own()).
  const statusField = encodeCheckResponse({ status: response.status });
  const deniedWithoutBody = deniedField.subarray(1 + varintLength(deniedField, 1));
  const metadataField = encodeCheckResponse({ dynamic_metadata: response.dynamic_metadata });
  const parts3 = own(Buffer.concat([statusField, deniedWithoutBody, metadataField]));
  const afterDenied = statusField.length + deniedWithoutBody.length;
  return {
    bodyBefore: parts[0]!,
    bodyAfter: parts[1]!,
    statusField: parts3.subarray(0, statusField.length),
    deniedWithoutBody: parts3.subarray(statusField.length, afterDenied),
    metadataField: parts3.subarray(afterDenied),
    realm: context.realm,
    hints: context.hints,
  };
}

/** status, denied_response { status, headers, body }, dynamic_metadata: the order protobufjs writes. */
function spliceBody(template: DenyTemplate, body: string): Buffer {
  const bodyLength = Buffer.byteLength(body, 'utf8');
  const bodyField = 1 + varintSize(bodyLength) + bodyLength;
  const deniedLength = template.deniedWithoutBody.length + bodyField;
  const total =
    template.statusField.length + 1 + varintSize(deniedLength) + deniedLength + template.metadataField.length;
  const out = Buffer.allocUnsafe(total);
  let at = template.statusField.copy(out, 0);
  out[at++] = DENIED_RESPONSE_TAG;
  at = writeVarint(out, at, deniedLength);
  at += template.deniedWithoutBody.copy(out, at);
  out[at++] = BODY_TAG;
  at = writeVarint(out, at, bodyLength);
  at += out.write(body, at, 'utf8');
  template.metadataField.copy(out, at);
  return out;
}

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value >>>= 7;
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[at++] = value;
  return at;
}

/** Bytes taken by the varint starting at `at`. */
function varintLength(bytes: Buffer, at: number): number {
  let length = 1;
  while ((bytes[at + length - 1]! & 0x80) !== 0) length++;
  return length;
}
