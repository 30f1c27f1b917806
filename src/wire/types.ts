// The ext_authz v3 messages as @grpc/proto-loader hands them to us (keepCase: true, so field names are
// Envoy's own snake_case; longs as strings; bytes as Buffer; oneofs named). Only the fields scopegate
// reads or writes are typed; everything is optional because proto3 omits defaults and Envoy omits
// whole sub-messages.

export interface ProtoValue {
  null_value?: 'NULL_VALUE' | number;
  number_value?: number;
  string_value?: string;
  bool_value?: boolean;
  struct_value?: ProtoStruct;
  list_value?: { values?: ProtoValue[] };
  kind?: 'null_value' | 'number_value' | 'string_value' | 'bool_value' | 'struct_value' | 'list_value';
}
export interface ProtoStruct {
  fields?: Record<string, ProtoValue>;
}

export interface HeaderValue {
  key?: string;
  value?: string;
  raw_value?: Buffer;
}

export interface HttpRequestAttrs {
  id?: string;
  method?: string;
  headers?: Record<string, string>;
  header_map?: { headers?: HeaderValue[] };
  path?: string;
  host?: string;
  scheme?: string;
  query?: string;
  fragment?: string;
  size?: string;
  protocol?: string;
  /**
   * The body Envoy buffered (`with_request_body`). A proto `string` upstream, read here as `bytes` (the same
   * wire format): Envoy copies the request's bytes into it unchecked, and a `string` decoder would turn
   * invalid UTF-8 into U+FFFD before anyone could refuse it. In-process callers may give text.
   */
  body?: string | Uint8Array;
  raw_body?: Uint8Array;
}

export interface PeerAttrs {
  address?: { socket_address?: { address?: string; port_value?: number } };
  service?: string;
  principal?: string;
  certificate?: string;
}

export interface CheckRequest {
  attributes?: {
    source?: PeerAttrs;
    destination?: PeerAttrs;
    request?: { time?: unknown; http?: HttpRequestAttrs };
    context_extensions?: Record<string, string>;
    metadata_context?: { filter_metadata?: Record<string, ProtoStruct> };
    tls_session?: { sni?: string };
  };
}

export interface HeaderValueOption {
  /** `raw_value` carries a value's UTF-8 bytes when it is not plain ASCII (then `value` is empty). */
  header: { key: string; value: string; raw_value?: Buffer };
  /** Deprecated BoolValue honoured by Envoy < 1.37; false means overwrite. */
  append?: { value: boolean };
  append_action?:
    | 'APPEND_IF_EXISTS_OR_ADD'
    | 'ADD_IF_ABSENT'
    | 'OVERWRITE_IF_EXISTS_OR_ADD'
    | 'OVERWRITE_IF_EXISTS';
}

export interface CheckResponse {
  status: { code: number; message?: string };
  denied_response?: {
    status: { code: number };
    headers?: HeaderValueOption[];
    body?: string;
  };
  ok_response?: {
    headers?: HeaderValueOption[];
    headers_to_remove?: string[];
  };
  dynamic_metadata?: ProtoStruct;
}
