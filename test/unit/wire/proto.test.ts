// Proves scopegate's trimmed protos speak Envoy's wire format, without trusting those protos: requests are
// built and responses read with a hand-written wire codec (./raw-protobuf.ts) whose field numbers are copied
// from Envoy's and Google's upstream files, cited below. Then a real gRPC round trip on 127.0.0.1.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REASONS } from '../../../src/vocabulary/index.js';
import {
  authorizationService,
  findProtoRoot,
  healthService,
  httpStatusNumber,
  PROTO_ROOT,
} from '../../../src/wire/proto.js';
import type { CheckRequest, CheckResponse } from '../../../src/wire/types.js';
import { connectAuthorization, connectHealth, deniedHttpStatus } from '../../support/grpc-client.js';
import { fieldNumbers, get, put, readFields, single, WireType } from './raw-protobuf.js';

// ---- Field numbers, copied by hand from the upstream protos (never from this repository's proto/) ----

// envoyproxy/envoy api/envoy/service/auth/v3/external_auth.proto
const CheckRequestF = { attributes: 1 };
const CheckResponseF = { status: 1, denied_response: 2, ok_response: 3, dynamic_metadata: 4 };
const DeniedHttpResponseF = { status: 1, headers: 2, body: 3 };
const OkHttpResponseF = {
  headers: 2,
  dynamic_metadata: 3,
  headers_to_remove: 5,
  response_headers_to_add: 6,
  query_parameters_to_set: 7,
  query_parameters_to_remove: 8,
};
// envoyproxy/envoy api/envoy/service/auth/v3/attribute_context.proto
const AttributeContextF = {
  source: 1,
  destination: 2,
  request: 4,
  context_extensions: 10,
  metadata_context: 11,
  tls_session: 12,
  route_metadata_context: 13,
};
const PeerF = { address: 1, service: 2, labels: 3, principal: 4, certificate: 5 };
const RequestF = { time: 1, http: 2 };
const HttpRequestF = {
  id: 1,
  method: 2,
  headers: 3,
  path: 4,
  host: 5,
  scheme: 6,
  query: 7,
  fragment: 8,
  size: 9,
  protocol: 10,
  body: 11,
  raw_body: 12,
  header_map: 13,
};
const TLSSessionF = { sni: 1 };
// envoyproxy/envoy api/envoy/config/core/v3/address.proto
const AddressF = { socket_address: 1, pipe: 2, envoy_internal_address: 3 };
const SocketAddressF = { protocol: 1, address: 2, port_value: 3 };
const PipeF = { path: 1, mode: 2 };
// envoyproxy/envoy api/envoy/config/core/v3/base.proto
const MetadataF = { filter_metadata: 1 };
// envoyproxy/envoy api/envoy/config/core/v3/header_value.proto (in base.proto before it was split out)
const HeaderValueF = { key: 1, value: 2, raw_value: 3 };
const HeaderValueOptionF = { header: 1, append: 2, append_action: 3, keep_empty_value: 4 };
const HeaderAppendAction = { APPEND_IF_EXISTS_OR_ADD: 0, ADD_IF_ABSENT: 1, OVERWRITE_IF_EXISTS_OR_ADD: 2 };
const HeaderMapF = { headers: 1 };
// envoyproxy/envoy api/envoy/type/v3/http_status.proto
const HttpStatusF = { code: 1 };
// googleapis/googleapis google/rpc/status.proto
const RpcStatusF = { code: 1, message: 2 };
// protocolbuffers/protobuf src/google/protobuf/{struct,timestamp,wrappers}.proto
const StructF = { fields: 1 };
const ValueF = {
  null_value: 1,
  number_value: 2,
  string_value: 3,
  bool_value: 4,
  struct_value: 5,
  list_value: 6,
};
const ListValueF = { values: 1 };
const TimestampF = { seconds: 1, nanos: 2 };
const BoolValueF = { value: 1 };

// ---- Encoding a google.protobuf.Struct by hand, as Envoy's jwt_authn stores a payload ----

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

function structBody(object: Record<string, Json>): Buffer {
  return Buffer.concat(
    Object.entries(object).map(([k, v]) => put.mapEntry(StructF.fields, k, put.bytes(2, valueBody(v)))),
  );
}
function valueBody(value: Json): Buffer {
  if (value === null) return put.varint(ValueF.null_value, 0);
  if (typeof value === 'number') return put.double(ValueF.number_value, value);
  if (typeof value === 'string') return put.string(ValueF.string_value, value);
  if (typeof value === 'boolean') return put.bool(ValueF.bool_value, value);
  if (Array.isArray(value)) {
    return put.message(
      ValueF.list_value,
      ...value.map((item) => put.bytes(ListValueF.values, valueBody(item))),
    );
  }
  return put.bytes(ValueF.struct_value, structBody(value));
}

// ---- A request as Envoy's ext_authz filter fills it ----

const JWT_PAYLOAD = {
  sub: 'picker-17',
  scope: 'inventory.read inventory.write',
  exp: 1767229200,
  aud: ['inventory-api', 'reports-api'],
  email_verified: true,
  act: null,
};

function socketAddress(address: string, port: number): Buffer {
  return put.message(
    PeerF.address,
    put.message(
      AddressF.socket_address,
      put.string(SocketAddressF.address, address),
      put.varint(SocketAddressF.port_value, port),
    ),
  );
}

function envoyCheckRequest(http: Buffer[]): Buffer {
  return Buffer.concat([
    put.message(
      CheckRequestF.attributes,
      put.message(
        AttributeContextF.source,
        socketAddress('10.20.30.40', 51234),
        put.string(PeerF.principal, 'spiffe://acme/picker'),
      ),
      put.message(AttributeContextF.destination, socketAddress('10.0.0.5', 8080)),
      put.message(
        AttributeContextF.request,
        put.message(
          RequestF.time,
          put.varint(TimestampF.seconds, 1767225600),
          put.varint(TimestampF.nanos, 123000000),
        ),
        put.message(RequestF.http, ...http),
      ),
      put.stringMap(AttributeContextF.context_extensions, { tenant: 'acme', route_group: 'stock' }),
      put.message(
        AttributeContextF.metadata_context,
        put.mapEntry(
          MetadataF.filter_metadata,
          'envoy.filters.http.jwt_authn',
          put.bytes(2, structBody({ jwt_payload: JWT_PAYLOAD })),
        ),
      ),
      put.message(AttributeContextF.tls_session, put.string(TLSSessionF.sni, 'inventory.acme.example')),
    ),
  ]);
}

const PATH = '/v1/warehouses/berlin/stock?sku=AB-1&limit=5';
const BEARER = 'Bearer test.not-a-real.token';

describe('a CheckRequest as Envoy sends it decodes into the shapes of src/wire/types.ts', () => {
  it('headers-map mode: peer, time, method, headers, path with query, host, scheme, protocol, body, extensions, jwt_authn claims, SNI', () => {
    const bytes = envoyCheckRequest([
      put.string(HttpRequestF.id, 'req-7f3a'),
      put.string(HttpRequestF.method, 'POST'),
      put.stringMap(HttpRequestF.headers, {
        ':method': 'POST',
        ':path': PATH,
        ':authority': 'inventory.acme.example',
        ':scheme': 'https',
        authorization: BEARER,
        'x-request-id': 'req-7f3a',
        'content-type': 'application/json',
      }),
      put.string(HttpRequestF.path, PATH),
      put.string(HttpRequestF.host, 'inventory.acme.example'),
      put.string(HttpRequestF.scheme, 'https'),
      put.varint(HttpRequestF.size, 12),
      put.string(HttpRequestF.protocol, 'HTTP/2'),
      put.string(HttpRequestF.body, '{"qty":3,"ü":1}'),
    ]);

    const request: CheckRequest = authorizationService.Check.requestDeserialize(bytes);
    const attributes = request.attributes!;

    expect(attributes.source?.address?.socket_address).toEqual({
      address: '10.20.30.40',
      port_value: 51234,
      port_specifier: 'port_value',
    });
    expect(attributes.source?.principal).toBe('spiffe://acme/picker');
    expect(attributes.destination?.address?.socket_address?.port_value).toBe(8080);
    expect(attributes.request?.time).toEqual({ seconds: '1767225600', nanos: 123000000 });
    expect(attributes.request?.http).toEqual({
      id: 'req-7f3a',
      method: 'POST',
      headers: {
        ':method': 'POST',
        ':path': PATH,
        ':authority': 'inventory.acme.example',
        ':scheme': 'https',
        authorization: BEARER,
        'x-request-id': 'req-7f3a',
        'content-type': 'application/json',
      },
      path: PATH,
      host: 'inventory.acme.example',
      scheme: 'https',
      size: '12',
      protocol: 'HTTP/2',
      body: Buffer.from('{"qty":3,"ü":1}'),
    });
    expect(attributes.context_extensions).toEqual({ tenant: 'acme', route_group: 'stock' });
    expect(attributes.tls_session).toEqual({ sni: 'inventory.acme.example' });

    const jwtAuthn = attributes.metadata_context?.filter_metadata?.['envoy.filters.http.jwt_authn'];
    expect(jwtAuthn).toEqual({
      fields: {
        jwt_payload: {
          kind: 'struct_value',
          struct_value: {
            fields: {
              sub: { kind: 'string_value', string_value: 'picker-17' },
              scope: { kind: 'string_value', string_value: 'inventory.read inventory.write' },
              exp: { kind: 'number_value', number_value: 1767229200 },
              aud: {
                kind: 'list_value',
                list_value: {
                  values: [
                    { kind: 'string_value', string_value: 'inventory-api' },
                    { kind: 'string_value', string_value: 'reports-api' },
                  ],
                },
              },
              email_verified: { kind: 'bool_value', bool_value: true },
              act: { kind: 'null_value', null_value: 'NULL_VALUE' },
            },
          },
        },
      },
    });
  });

  it('raw-headers mode (encode_raw_headers): header_map carries raw_value bytes and the headers map is empty; pack_as_bytes puts the body in raw_body', () => {
    const header = (key: string, raw: Buffer) =>
      put.message(
        HeaderMapF.headers,
        put.string(HeaderValueF.key, key),
        put.bytes(HeaderValueF.raw_value, raw),
      );
    const latin1Value = Buffer.from([0x63, 0x61, 0x66, 0xe9]); // "café" in Latin-1: not valid UTF-8
    const bodyBytes = Buffer.from([0x7b, 0xff, 0xfe, 0x00, 0x7d]);
    const bytes = envoyCheckRequest([
      put.string(HttpRequestF.id, 'req-raw'),
      put.string(HttpRequestF.method, 'PUT'),
      put.message(
        HttpRequestF.header_map,
        header(':method', Buffer.from('PUT')),
        header(':path', Buffer.from(PATH)),
        // Raw mode keeps repeated lines apart instead of joining them with ','.
        header('authorization', Buffer.from('Bearer first')),
        header('authorization', Buffer.from('Bearer second')),
        header('x-request-id', Buffer.from('req-raw')),
        header('x-note', latin1Value),
      ),
      put.string(HttpRequestF.path, PATH),
      put.varint(HttpRequestF.size, -1),
      put.bytes(HttpRequestF.raw_body, bodyBytes),
    ]);

    const http = authorizationService.Check.requestDeserialize(bytes).attributes?.request?.http;

    expect(http?.headers).toBeUndefined();
    expect(http?.body).toBeUndefined();
    expect(http?.header_map?.headers).toEqual([
      { key: ':method', raw_value: Buffer.from('PUT') },
      { key: ':path', raw_value: Buffer.from(PATH) },
      { key: 'authorization', raw_value: Buffer.from('Bearer first') },
      { key: 'authorization', raw_value: Buffer.from('Bearer second') },
      { key: 'x-request-id', raw_value: Buffer.from('req-raw') },
      { key: 'x-note', raw_value: latin1Value },
    ]);
    expect(Buffer.isBuffer(http?.header_map?.headers?.[5]?.raw_value)).toBe(true);
    expect(Buffer.isBuffer(http?.raw_body)).toBe(true);
    expect(http?.raw_body?.equals(bodyBytes)).toBe(true);
    // "unknown size" is -1, sent as a ten-byte varint; longs decode as strings.
    expect(http?.size).toBe('-1');
  });

  it('body (field 11) keeps the bytes Envoy copied from the request, invalid UTF-8 included, for scopegate to refuse', () => {
    // Upstream declares it a string, and Envoy does not check the bytes it copies in; a string decoder
    // would turn 0xff into U+FFFD and the location phase would read a body the upstream never receives.
    const bodyBytes = Buffer.from('{"location":"WH01","note":"\xff"}', 'latin1');
    const bytes = envoyCheckRequest([
      put.string(HttpRequestF.method, 'POST'),
      put.string(HttpRequestF.path, PATH),
      put.bytes(HttpRequestF.body, bodyBytes),
    ]);
    const http = authorizationService.Check.requestDeserialize(bytes).attributes?.request?.http;
    expect(Buffer.isBuffer(http?.body)).toBe(true);
    expect(Buffer.from(http?.body ?? '').equals(bodyBytes)).toBe(true);
  });

  it('a field a newer Envoy adds is skipped, not fatal', () => {
    const bytes = Buffer.concat([
      put.message(
        CheckRequestF.attributes,
        put.message(
          AttributeContextF.request,
          put.message(RequestF.http, put.string(HttpRequestF.method, 'GET'), put.string(99, 'future')),
        ),
        put.varint(77, 1),
      ),
    ]);
    expect(authorizationService.Check.requestDeserialize(bytes).attributes?.request?.http).toEqual({
      method: 'GET',
    });
  });

  it('a header or claim named __proto__ stays an ordinary own key and touches no prototype', () => {
    // ['__proto__'] as a computed key makes an own property, as Envoy's map entry would, not a prototype.
    const bytes = put.message(
      CheckRequestF.attributes,
      put.message(
        AttributeContextF.request,
        put.message(
          RequestF.http,
          put.stringMap(HttpRequestF.headers, { ['__proto__']: 'x', constructor: 'y' }),
        ),
      ),
      put.message(
        AttributeContextF.metadata_context,
        put.mapEntry(
          MetadataF.filter_metadata,
          'envoy.filters.http.jwt_authn',
          put.bytes(2, structBody({ ['__proto__']: 'z' })),
        ),
      ),
    );
    const attributes = authorizationService.Check.requestDeserialize(bytes).attributes!;
    const headers = attributes.request!.http!.headers!;
    expect(Object.getPrototypeOf(headers)).toBe(Object.prototype);
    expect(Object.keys(headers).sort()).toEqual(['__proto__', 'constructor']);
    const fields = attributes.metadata_context!.filter_metadata!['envoy.filters.http.jwt_authn']!.fields!;
    expect(Object.getPrototypeOf(fields)).toBe(Object.prototype);
    expect(Object.hasOwn(fields, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).string_value).toBeUndefined();
  });

  it('a unix-socket peer decodes as a pipe, never as a socket address', () => {
    const bytes = put.message(
      CheckRequestF.attributes,
      put.message(
        AttributeContextF.source,
        put.message(
          PeerF.address,
          put.message(
            AddressF.pipe,
            put.string(PipeF.path, '/run/envoy.sock'),
            put.varint(PipeF.mode, 0o600),
          ),
        ),
      ),
    );
    const address = authorizationService.Check.requestDeserialize(bytes).attributes?.source?.address;
    expect(address?.socket_address).toBeUndefined();
    expect(address).toEqual({ address: 'pipe', pipe: { path: '/run/envoy.sock', mode: 0o600 } });
  });
});

// ---- Responses, read back field by field ----

function responseFields(response: CheckResponse) {
  return readFields(authorizationService.Check.responseSerialize(response));
}

/** Reads a HeaderValueOption as Envoy would: key, value, the deprecated BoolValue append, append_action. */
function readHeaderOption(option: ReturnType<typeof readFields>) {
  const header = get.message(option, HeaderValueOptionF.header);
  const appendPresent = option.some((f) => f.field === HeaderValueOptionF.append);
  return {
    key: get.string(header, HeaderValueF.key),
    value: get.string(header, HeaderValueF.value),
    // BoolValue is a message: present-with-false is what makes old Envoy overwrite instead of append.
    append: appendPresent
      ? get.int(get.message(option, HeaderValueOptionF.append), BoolValueF.value) === 1
      : undefined,
    append_action: get.int(option, HeaderValueOptionF.append_action),
    fields: fieldNumbers(option),
  };
}

describe('the CheckResponses scopegate sends are read by Envoy field by field', () => {
  it('a deny: status PERMISSION_DENIED, 403 with WWW-Authenticate and a body, reason in dynamic_metadata', () => {
    const challenge = 'Bearer error="insufficient_scope", scope="inventory.write"';
    const body = '{"error":"insufficient_scope","reason":"scope_missing"}';
    const top = responseFields({
      status: { code: 7, message: 'scope_missing' },
      denied_response: {
        status: { code: 403 },
        headers: [
          {
            header: { key: 'www-authenticate', value: challenge },
            append: { value: false },
            append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
          },
        ],
        body,
      },
      dynamic_metadata: { fields: { reason: { string_value: 'scope_missing' } } },
    });

    expect(fieldNumbers(top)).toEqual([
      CheckResponseF.status,
      CheckResponseF.denied_response,
      CheckResponseF.dynamic_metadata,
    ]);

    const status = get.message(top, CheckResponseF.status);
    expect(get.int(status, RpcStatusF.code)).toBe(7);
    expect(get.string(status, RpcStatusF.message)).toBe('scope_missing');

    const denied = get.message(top, CheckResponseF.denied_response);
    expect(fieldNumbers(denied)).toEqual([
      DeniedHttpResponseF.status,
      DeniedHttpResponseF.headers,
      DeniedHttpResponseF.body,
    ]);
    expect(get.int(get.message(denied, DeniedHttpResponseF.status), HttpStatusF.code)).toBe(403);
    expect(get.messages(denied, DeniedHttpResponseF.headers).map(readHeaderOption)).toEqual([
      {
        key: 'www-authenticate',
        value: challenge,
        append: false,
        append_action: HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
        fields: [HeaderValueOptionF.header, HeaderValueOptionF.append, HeaderValueOptionF.append_action],
      },
    ]);
    expect(get.string(denied, DeniedHttpResponseF.body)).toBe(body);

    const entry = get.message(get.message(top, CheckResponseF.dynamic_metadata), StructF.fields);
    expect(get.string(entry, 1)).toBe('reason');
    expect(get.string(get.message(entry, 2), ValueF.string_value)).toBe('scope_missing');
  });

  it('an allow: status OK, headers with append=false and OVERWRITE_IF_EXISTS_OR_ADD, headers_to_remove, a Struct of every kind', () => {
    const top = responseFields({
      status: { code: 0 },
      ok_response: {
        headers: [
          {
            header: { key: 'x-scopegate-subject', value: 'picker-17' },
            append: { value: false },
            append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
          },
          {
            header: { key: 'x-scopegate-location', value: 'berlin' },
            append: { value: false },
            append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
          },
        ],
        headers_to_remove: ['authorization', 'x-scopegate-roles'],
      },
      dynamic_metadata: {
        fields: {
          reason: { string_value: 'allowed' },
          latency_ms: { number_value: 1.5 },
          cached: { bool_value: true },
          identity: { struct_value: { fields: { sub: { string_value: 'picker-17' } } } },
          scopes: { list_value: { values: [{ string_value: 'inventory.read' }] } },
        },
      },
    });

    expect(fieldNumbers(top)).toEqual([
      CheckResponseF.status,
      CheckResponseF.ok_response,
      CheckResponseF.dynamic_metadata,
    ]);
    // An empty or zero-code status both mean OK to Envoy; what matters is that nothing else is set.
    expect(get.int(get.message(top, CheckResponseF.status), RpcStatusF.code)).toBe(0);

    const ok = get.message(top, CheckResponseF.ok_response);
    expect(fieldNumbers(ok)).toEqual([OkHttpResponseF.headers, OkHttpResponseF.headers_to_remove]);
    expect(get.messages(ok, OkHttpResponseF.headers).map(readHeaderOption)).toEqual([
      {
        key: 'x-scopegate-subject',
        value: 'picker-17',
        append: false,
        append_action: HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
        fields: [1, 2, 3],
      },
      {
        key: 'x-scopegate-location',
        value: 'berlin',
        append: false,
        append_action: HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
        fields: [1, 2, 3],
      },
    ]);
    expect(get.strings(ok, OkHttpResponseF.headers_to_remove)).toEqual([
      'authorization',
      'x-scopegate-roles',
    ]);

    const metadata = new Map(
      get
        .messages(get.message(top, CheckResponseF.dynamic_metadata), StructF.fields)
        .map((entry) => [get.string(entry, 1), get.message(entry, 2)]),
    );
    expect([...metadata.keys()]).toEqual(['reason', 'latency_ms', 'cached', 'identity', 'scopes']);
    expect(get.string(metadata.get('reason')!, ValueF.string_value)).toBe('allowed');
    expect(get.double(metadata.get('latency_ms')!, ValueF.number_value)).toBe(1.5);
    expect(single(metadata.get('cached')!, ValueF.bool_value, WireType.VARINT).int).toBe(1n);
    const identityEntry = get.message(
      get.message(metadata.get('identity')!, ValueF.struct_value),
      StructF.fields,
    );
    expect(get.string(identityEntry, 1)).toBe('sub');
    expect(get.string(get.message(identityEntry, 2), ValueF.string_value)).toBe('picker-17');
    const scopeValues = get.messages(
      get.message(metadata.get('scopes')!, ValueF.list_value),
      ListValueF.values,
    );
    expect(scopeValues.map((v) => get.string(v, ValueF.string_value))).toEqual(['inventory.read']);
  });

  it('an allow that asks Envoy to add response headers and rewrite the query uses fields 6, 7 and 8', () => {
    const bytes = authorizationService.Check.responseSerialize({
      status: { code: 0 },
      ok_response: {
        response_headers_to_add: [{ header: { key: 'x-authz', value: 'ok' } }],
        query_parameters_to_set: [{ key: 'tenant', value: 'acme' }],
        query_parameters_to_remove: ['access_token'],
      },
    } as CheckResponse);
    const ok = get.message(readFields(bytes), CheckResponseF.ok_response);
    expect(fieldNumbers(ok)).toEqual([
      OkHttpResponseF.response_headers_to_add,
      OkHttpResponseF.query_parameters_to_set,
      OkHttpResponseF.query_parameters_to_remove,
    ]);
    const setParam = get.message(ok, OkHttpResponseF.query_parameters_to_set);
    expect([get.string(setParam, 1), get.string(setParam, 2)]).toEqual(['tenant', 'acme']);
    expect(get.strings(ok, OkHttpResponseF.query_parameters_to_remove)).toEqual(['access_token']);
  });

  it.each(Object.entries(REASONS).filter(([name]) => name !== 'allowed'))(
    '%s: its HTTP status and gRPC code go on the wire as those numbers',
    (_name, spec) => {
      const top = responseFields({
        status: { code: spec.grpc },
        denied_response: { status: { code: spec.http } },
      });
      expect(get.int(get.message(top, CheckResponseF.status), RpcStatusF.code)).toBe(spec.grpc);
      const denied = get.message(top, CheckResponseF.denied_response);
      expect(get.int(get.message(denied, DeniedHttpResponseF.status), HttpStatusF.code)).toBe(spec.http);
    },
  );
});

// ---- Over real gRPC ----

describe('over real gRPC on 127.0.0.1', () => {
  let server: grpc.Server;
  let address: string;
  const seen: CheckRequest[] = [];

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(authorizationService, {
      Check(
        call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>,
        callback: grpc.sendUnaryData<CheckResponse>,
      ) {
        seen.push(call.request);
        const http = call.request.attributes?.request?.http;
        if (http?.path?.startsWith('/admin')) {
          callback(null, {
            status: { code: 7 },
            denied_response: { status: { code: 403 }, body: '{"error":"access_denied"}' },
          });
          return;
        }
        const sub =
          call.request.attributes?.metadata_context?.filter_metadata?.['envoy.filters.http.jwt_authn']?.fields
            ?.jwt_payload?.struct_value?.fields?.sub?.string_value ?? 'anonymous';
        callback(null, {
          status: { code: 0 },
          ok_response: {
            headers: [
              {
                header: { key: 'x-scopegate-subject', value: sub },
                append: { value: false },
                append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
              },
            ],
            headers_to_remove: ['authorization'],
          },
          dynamic_metadata: { fields: { reason: { string_value: 'allowed' } } },
        });
      },
    });
    server.addService(healthService, {
      Check(_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<{ status: string }>) {
        callback(null, { status: 'SERVING' });
      },
      Watch(call: grpc.ServerWritableStream<unknown, { status: string }>) {
        call.write({ status: 'SERVING' });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    address = `127.0.0.1:${port}`;
  });

  afterAll(() => server?.forceShutdown());

  it('an allowed GET reaches the handler intact and the client sees the overwrite headers and metadata', async () => {
    const authz = connectAuthorization(address);
    try {
      const response = await authz.check({
        attributes: {
          source: { address: { socket_address: { address: '10.20.30.40', port_value: 51234 } } },
          request: { http: { method: 'GET', path: PATH, headers: { authorization: BEARER, ':path': PATH } } },
          metadata_context: {
            filter_metadata: {
              'envoy.filters.http.jwt_authn': {
                fields: { jwt_payload: { struct_value: { fields: { sub: { string_value: 'picker-17' } } } } },
              },
            },
          },
        },
      });
      expect(seen.at(-1)?.attributes?.request?.http).toEqual({
        method: 'GET',
        path: PATH,
        headers: { authorization: BEARER, ':path': PATH },
      });
      expect(response.http_response).toBe('ok_response');
      expect(response.status).toEqual({ code: 0 });
      expect(response.ok_response).toEqual({
        headers: [
          {
            header: { key: 'x-scopegate-subject', value: 'picker-17' },
            append: { value: false },
            append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
          },
        ],
        headers_to_remove: ['authorization'],
      });
      expect(response.dynamic_metadata).toEqual({
        fields: { reason: { kind: 'string_value', string_value: 'allowed' } },
      });
      expect(deniedHttpStatus(response)).toBeUndefined();
    } finally {
      authz.close();
    }
  });

  it('a denied request reaches the client as 403 with its body', async () => {
    const authz = connectAuthorization(address);
    try {
      const response = await authz.check({
        attributes: { request: { http: { method: 'DELETE', path: '/admin/users/9' } } },
      });
      expect(response.status.code).toBe(7);
      expect(response.denied_response?.status?.code).toBe('Forbidden');
      expect(deniedHttpStatus(response)).toBe(403);
      expect(response.denied_response?.body).toBe('{"error":"access_denied"}');
    } finally {
      authz.close();
    }
  });

  it('the health service answers SERVING on Check and Watch, and UNIMPLEMENTED for the List it does not serve', async () => {
    const health = connectHealth(address);
    try {
      expect(await health.check('')).toBe('SERVING');
      expect(await health.watchFirst('')).toBe('SERVING');
      const list = health.client as unknown as {
        List(request: object, callback: (error: grpc.ServiceError | null) => void): void;
      };
      const error = await new Promise<grpc.ServiceError | null>((resolve) => list.List({}, resolve));
      expect(error?.code).toBe(grpc.status.UNIMPLEMENTED);
    } finally {
      health.close();
    }
  });
});

// ---- Finding the protos ----

describe('finding the proto folder', () => {
  it('from compiled code in dist/server/ it walks up to the same package root', () => {
    const packageRoot = join(PROTO_ROOT, '..');
    expect(findProtoRoot(join(packageRoot, 'dist', 'server'))).toBe(PROTO_ROOT);
    expect(findProtoRoot(join(packageRoot, 'src', 'server'))).toBe(PROTO_ROOT);
  });

  it('refuses to start when no proto folder is above it', () => {
    const lonely = mkdtempSync(join(tmpdir(), 'scopegate-noproto-'));
    try {
      expect(() => findProtoRoot(lonely)).toThrow(/no proto\/ folder/);
    } finally {
      rmSync(lonely, { recursive: true, force: true });
    }
  });

  it("maps Envoy's status names back to numbers", () => {
    expect(httpStatusNumber('Forbidden')).toBe(403);
    expect(httpStatusNumber('Unauthorized')).toBe(401);
    expect(httpStatusNumber('ServiceUnavailable')).toBe(503);
    expect(httpStatusNumber(499)).toBe(499);
    expect(httpStatusNumber('NoSuchStatus')).toBeUndefined();
  });
});
