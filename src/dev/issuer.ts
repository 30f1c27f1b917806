// A development OAuth2 authorization server that only knows the client credentials grant (RFC 6749 §4.4),
// so the demo and the e2e tests get tokens the way the support thread's service account did: from a token
// endpoint, for a registered client, with the scopes it asked for within what the IdP granted it. What the
// gateway then allows is scopegate's policy's business, not this issuer's. It signs with the dev keys of
// src/dev/keys.ts and publishes their public half as a JWKS, so `scopegate token --key DIR/signing-key.jwk`
// can mint other tokens (expired ones, other grant types) that verify against the same keys.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isMap, isScalar, isSeq, type Node } from 'yaml';
import { formatProblem, inFileOrder } from '../config/problems.js';
import { readTextFile } from '../config/text-file.js';
import { parseYaml, YamlReader } from '../config/yaml.js';
import { listenHttp } from '../server/admin.js';
import { readBody } from './http.js';
import { ensureDevKeys, mintToken } from './keys.js';

export interface DevClient {
  readonly id: string;
  readonly secret: string;
  /** The token's `sub`: the service account the client acts as. */
  readonly subject: string;
  /** The scopes this IdP granted the client; a token carries at most these. */
  readonly scopes: readonly string[];
  readonly roles?: readonly string[];
  readonly locations?: readonly string[];
}

export interface DevIssuerOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0 (a free port). */
  readonly port?: number;
  /** The `iss` of every token (not necessarily this server's URL: the example policy trusts a fixed name). */
  readonly issuer: string;
  readonly audience: string;
  /** Created on first start with ensureDevKeys; never committed. */
  readonly keysDir: string;
  readonly clients: readonly DevClient[];
  /** Default 300. */
  readonly tokenLifetimeSeconds?: number;
}

export interface DevIssuer {
  /** `http://HOST:PORT` */
  readonly url: string;
  readonly port: number;
  readonly jwksUri: string;
  readonly tokenUrl: string;
  close(): Promise<void>;
}

export const JWKS_PATH = '/.well-known/jwks.json';
export const TOKEN_PATH = '/oauth2/token';
/** Token requests larger than this are refused before parsing. */
export const MAX_TOKEN_REQUEST_BYTES = 16 * 1024;
export const DEFAULT_TOKEN_LIFETIME_SECONDS = 300;
const MAX_LIFETIME_SECONDS = 24 * 3600;

// ---------------------------------------------------------------------------------------------------------
// The token endpoint's decision, over plain data.

/** RFC 6749 §5.2 error codes this issuer can answer with. */
export type TokenErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'unsupported_grant_type'
  | 'invalid_scope';

export type TokenDecision =
  | { readonly ok: true; readonly client: DevClient; readonly scopes: readonly string[] }
  | {
      readonly ok: false;
      readonly status: number;
      readonly error: TokenErrorCode;
      /** Names parameters and scopes, never a secret. */
      readonly description: string;
    };

export interface TokenRequest {
  /** The raw Authorization header, if any. */
  readonly authorization: string | undefined;
  readonly contentType: string | undefined;
  /** The form-encoded request body. */
  readonly body: string;
}

type TokenRefusal = Extract<TokenDecision, { ok: false }>;

const refuse = (
  error: TokenErrorCode,
  description: string,
  status = error === 'invalid_client' ? 401 : 400,
): TokenRefusal => ({ ok: false, status, error, description });

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/** RFC 6749 §2.3.1: HTTP Basic over the form-urlencoded client id and secret. */
function basicCredentials(header: string): { id: string; secret: string } | undefined {
  const match = /^Basic ([A-Za-z0-9+/]+={0,2})$/i.exec(header.trim());
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const formDecode = (text: string) => decodeURIComponent(text.replaceAll('+', ' '));
  try {
    return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
  } catch {
    return undefined;
  }
}

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Equal-length digests make the comparison constant-time whatever the secrets' lengths. */
function secretsMatch(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** What the token endpoint answers, before any signing: who the client is and which scopes it gets. */
export function decideTokenRequest(
  request: TokenRequest,
  clients: ReadonlyMap<string, DevClient>,
): TokenDecision {
  const type = (request.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded')
    return refuse('invalid_request', 'the token request must be application/x-www-form-urlencoded');
  const form = new URLSearchParams(request.body);
  // §3.2: parameters must not repeat; §3.1: a parameter without a value counts as omitted.
  const params = new Map<string, string>();
  for (const [name, value] of form) {
    if (form.getAll(name).length > 1) return refuse('invalid_request', `the parameter ${name} is repeated`);
    if (value !== '') params.set(name, value);
  }

  const inForm = params.has('client_id') || params.has('client_secret');
  let credentials: { id: string; secret: string } | undefined;
  if (request.authorization !== undefined) {
    // §2.3: a client must not use more than one authentication method in a request.
    if (inForm)
      return refuse('invalid_request', 'use either HTTP Basic or client_id/client_secret, not both');
    credentials = basicCredentials(request.authorization);
    if (!credentials)
      return refuse('invalid_client', 'the Authorization header is not HTTP Basic credentials');
  } else if (inForm) {
    const id = params.get('client_id');
    const secret = params.get('client_secret');
    if (id === undefined || secret === undefined)
      return refuse('invalid_client', 'client_id and client_secret go together');
    credentials = { id, secret };
  } else {
    return refuse('invalid_client', 'client authentication is required');
  }
  const client = clients.get(credentials.id);
  // Compare against something even for an unknown client, so timing does not tell which ids exist.
  const secretOk = secretsMatch(credentials.secret, client?.secret ?? '\u0000unknown client');
  if (!client || !secretOk) return refuse('invalid_client', 'client authentication failed');

  const grantType = params.get('grant_type');
  if (grantType === undefined) return refuse('invalid_request', 'grant_type is required');
  if (grantType !== 'client_credentials')
    return refuse('unsupported_grant_type', 'this issuer supports only grant_type=client_credentials');

  const requested = params.get('scope');
  if (requested === undefined) return { ok: true, client, scopes: [...client.scopes] };
  const scopes = [...new Set(requested.split(' ').filter((s) => s !== ''))];
  if (scopes.length === 0) return { ok: true, client, scopes: [...client.scopes] };
  const malformed = scopes.find((s) => !SCOPE_TOKEN.test(s));
  if (malformed !== undefined)
    return refuse('invalid_scope', 'scope holds a character RFC 6749 §3.3 forbids');
  const notGranted = scopes.filter((s) => !client.scopes.includes(s));
  if (notGranted.length > 0)
    return refuse('invalid_scope', `the client was not granted ${notGranted.join(', ')} by this issuer`);
  return { ok: true, client, scopes };
}

// ---------------------------------------------------------------------------------------------------------
// The HTTP edge.

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res
    .writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers })
    .end(JSON.stringify(body) + '\n');
}

/** §5.1/§5.2: token answers, good or bad, must not be cached. */
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

function sendTokenError(res: ServerResponse, refusal: TokenRefusal, close = false): void {
  sendJson(
    res,
    refusal.status,
    { error: refusal.error, error_description: refusal.description },
    {
      ...NO_STORE,
      ...(refusal.error === 'invalid_client' && { 'www-authenticate': 'Basic realm="dev-issuer"' }),
      ...(close && { connection: 'close' }),
    },
  );
}

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

/** The public key set from ensureDevKeys' jwks.json; a private member there is refused, never published. */
async function publicKeySet(jwksFile: string): Promise<{ keys: Array<Record<string, unknown>> }> {
  const text = await readFile(jwksFile, 'utf8');
  if (text.length > 64 * 1024) throw new Error(`${jwksFile} is larger than 64 KiB`);
  const parsed = JSON.parse(text) as { keys?: unknown };
  if (!Array.isArray(parsed.keys) || parsed.keys.length === 0) throw new Error(`${jwksFile} holds no keys`);
  for (const key of parsed.keys as Array<Record<string, unknown>>) {
    if (PRIVATE_JWK_MEMBERS.some((member) => member in key))
      throw new Error(`${jwksFile} holds private key material; refusing to publish it`);
  }
  return { keys: parsed.keys as Array<Record<string, unknown>> };
}

export async function startDevIssuer(options: DevIssuerOptions): Promise<DevIssuer> {
  const clients = new Map<string, DevClient>();
  for (const client of options.clients) {
    if (clients.has(client.id)) throw new Error(`dev issuer: client "${client.id}" is listed twice`);
    if (client.secret === '') throw new Error(`dev issuer: client "${client.id}" has an empty secret`);
    clients.set(client.id, client);
  }
  const lifetime = options.tokenLifetimeSeconds ?? DEFAULT_TOKEN_LIFETIME_SECONDS;
  if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > MAX_LIFETIME_SECONDS)
    throw new Error(`dev issuer: tokenLifetimeSeconds must be an integer 1..${MAX_LIFETIME_SECONDS}`);

  const { keyFile, jwksFile } = await ensureDevKeys(options.keysDir);
  const jwks = await publicKeySet(jwksFile);
  let metadata: Record<string, unknown> = {};

  const issueToken = async (req: IncomingMessage, res: ServerResponse) => {
    const read = await readBody(req, MAX_TOKEN_REQUEST_BYTES);
    if (!read.ok) {
      const why = read.tooLarge ? `larger than ${MAX_TOKEN_REQUEST_BYTES} bytes` : 'unreadable';
      // The unread rest of the body must not be taken for the next request on this connection.
      return sendTokenError(res, refuse('invalid_request', `the token request is ${why}`, 413), true);
    }
    const decision = decideTokenRequest(
      {
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        body: read.bytes.toString('utf8'),
      },
      clients,
    );
    if (!decision.ok) return sendTokenError(res, decision);
    const { client, scopes } = decision;
    const scope = scopes.join(' ');
    const accessToken = await mintToken({
      keyFile,
      issuer: options.issuer,
      audience: options.audience,
      subject: client.subject,
      client: client.id,
      scope,
      grantType: 'client_credentials',
      ttlSeconds: lifetime,
      ...(client.roles && { roles: [...client.roles] }),
      ...(client.locations && { locations: [...client.locations] }),
    });
    sendJson(
      res,
      200,
      { access_token: accessToken, token_type: 'Bearer', expires_in: lifetime, scope },
      NO_STORE,
    );
  };

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const only = (method: string, then: () => void | Promise<void>) => {
      if (req.method === method || (method === 'GET' && req.method === 'HEAD')) return then();
      sendJson(res, 405, { error: 'invalid_request', error_description: `use ${method}` }, { allow: method });
    };
    const answer = async () => {
      switch (path) {
        case TOKEN_PATH:
          return only('POST', () => issueToken(req, res));
        case JWKS_PATH:
          return only('GET', () => sendJson(res, 200, jwks, { 'cache-control': 'max-age=300' }));
        case '/.well-known/openid-configuration':
        case '/.well-known/oauth-authorization-server':
          return only('GET', () => sendJson(res, 200, metadata));
        case '/healthz':
          return only('GET', () => sendJson(res, 200, { status: 'ok' }));
        default:
          sendJson(res, 404, { error: 'not_found' });
      }
    };
    answer().catch(() => {
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, { error: 'server_error' }, { ...NO_STORE, connection: 'close' });
    });
  });

  const { host, port } = await listenHttp(server, options.host ?? '127.0.0.1', options.port ?? 0);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const jwksUri = url + JWKS_PATH;
  const tokenUrl = url + TOKEN_PATH;
  // RFC 8414 metadata. Its `issuer` is the tokens' `iss`, which is a fixed name rather than this URL: a
  // discovery client that insists they match will refuse it, and this dev issuer accepts that.
  metadata = {
    issuer: options.issuer,
    jwks_uri: jwksUri,
    token_endpoint: tokenUrl,
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    scopes_supported: [...new Set(options.clients.flatMap((c) => c.scopes))],
  };
  return {
    url,
    port,
    jwksUri,
    tokenUrl,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// The issuer's YAML file (examples/inventory/dev-issuer.yaml).

export interface DevIssuerConfig {
  readonly issuer: string;
  readonly audience: string;
  readonly tokenLifetimeSeconds?: number;
  readonly clients: readonly DevClient[];
}

export type DevIssuerConfigResult =
  | { readonly ok: true; readonly config: DevIssuerConfig }
  | { readonly ok: false; readonly problems: readonly string[] };

export const MAX_CONFIG_BYTES = 64 * 1024;

/** Parses and checks the issuer file; every problem is `FILE:LINE:COL: field: message`. */
export function parseDevIssuerConfig(text: string, file: string): DevIssuerConfigResult {
  if (Buffer.byteLength(text, 'utf8') > MAX_CONFIG_BYTES)
    return wholeFileProblem(file, `the file is larger than ${MAX_CONFIG_BYTES} bytes`);
  const parsed = parseYaml(text, { uniqueKeys: true });
  // Aliases and tags are not scalars, maps or lists here, so they fail the shape checks: nothing expands.
  const reader = new YamlReader(parsed, file, { followAliases: false });
  const report = (node: unknown, field: string, message: string) =>
    reader.report(node as Node, field, message);
  const failed = (): DevIssuerConfigResult => ({
    ok: false,
    problems: inFileOrder(reader.problems).map(formatProblem),
  });
  for (const error of parsed.errors) reader.reportAt(error.offset, '', `invalid YAML: ${error.code}`);
  if (reader.problems.length > 0) return failed();

  const string = (node: unknown, field: string, pattern?: RegExp, what = 'a non-empty string') => {
    if (isScalar(node) && typeof node.value === 'string' && node.value.trim() !== '') {
      if (!pattern || pattern.test(node.value)) return node.value;
    }
    report(node, field, `expected ${what}`);
    return undefined;
  };
  const strings = (node: unknown, field: string, nonEmpty: boolean, pattern?: RegExp, what?: string) => {
    if (!isSeq(node) || (nonEmpty && node.items.length === 0)) {
      report(node, field, nonEmpty ? 'expected a non-empty list of strings' : 'expected a list');
      return undefined;
    }
    const values = node.items.map((item, i) => string(item, `${field}[${i}]`, pattern, what));
    return values.every((v) => v !== undefined) ? (values as string[]) : undefined;
  };
  const fields = (node: unknown, field: string, allowed: readonly string[], required: readonly string[]) => {
    const values = new Map<string, unknown>();
    if (!isMap(node)) {
      report(node, field, 'expected a mapping');
      return values;
    }
    for (const pair of node.items) {
      const name = isScalar(pair.key) ? String(pair.key.value) : '';
      if (!allowed.includes(name)) {
        report(pair.key, field, `unknown key "${name}" (expected one of ${allowed.join(', ')})`);
      } else {
        values.set(name, pair.value);
      }
    }
    for (const name of required) if (!values.has(name)) report(node, field, `missing required key "${name}"`);
    return values;
  };

  const top = fields(
    parsed.doc.contents,
    '',
    ['issuer', 'audience', 'tokenLifetimeSeconds', 'clients'],
    ['issuer', 'audience', 'clients'],
  );
  const issuer = top.has('issuer') ? string(top.get('issuer'), 'issuer') : undefined;
  const audience = top.has('audience') ? string(top.get('audience'), 'audience') : undefined;
  let lifetime: number | undefined;
  if (top.has('tokenLifetimeSeconds')) {
    const node = top.get('tokenLifetimeSeconds');
    const value = isScalar(node) ? node.value : undefined;
    if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_LIFETIME_SECONDS)
      lifetime = value;
    else report(node, 'tokenLifetimeSeconds', `expected an integer 1..${MAX_LIFETIME_SECONDS}`);
  }

  const clients: DevClient[] = [];
  const clientsNode = top.get('clients');
  if (top.has('clients') && (!isMap(clientsNode) || clientsNode.items.length === 0)) {
    report(clientsNode, 'clients', 'expected a mapping of client id to client');
  } else if (isMap(clientsNode)) {
    for (const pair of clientsNode.items) {
      const id = isScalar(pair.key) && typeof pair.key.value === 'string' ? pair.key.value : undefined;
      if (!id || id.includes(':')) {
        // §2.3.1: Basic credentials split at the first colon, so an id with one cannot authenticate.
        report(pair.key, 'clients', 'a client id is a non-empty string without ":"');
        continue;
      }
      const where = `clients.${id}`;
      const spec = fields(
        pair.value,
        where,
        ['secret', 'subject', 'scopes', 'roles', 'locations'],
        ['secret', 'subject', 'scopes'],
      );
      const secret = spec.has('secret') ? string(spec.get('secret'), `${where}.secret`) : undefined;
      const subject = spec.has('subject') ? string(spec.get('subject'), `${where}.subject`) : undefined;
      const scopes = spec.has('scopes')
        ? strings(spec.get('scopes'), `${where}.scopes`, true, SCOPE_TOKEN, 'an RFC 6749 scope token')
        : undefined;
      const roles = spec.has('roles') ? strings(spec.get('roles'), `${where}.roles`, false) : undefined;
      const locations = spec.has('locations')
        ? strings(spec.get('locations'), `${where}.locations`, false)
        : undefined;
      if (secret && subject && scopes)
        clients.push({
          id,
          secret,
          subject,
          scopes,
          ...(roles && { roles }),
          ...(locations && { locations }),
        });
    }
  }
  if (reader.problems.length > 0 || !issuer || !audience) return failed();
  return {
    ok: true,
    config: { issuer, audience, clients, ...(lifetime !== undefined && { tokenLifetimeSeconds: lifetime }) },
  };
}

/** Reads (at most MAX_CONFIG_BYTES) and parses the issuer file; a read failure is a problem too. */
export async function loadDevIssuerConfig(file: string): Promise<DevIssuerConfigResult> {
  const read = await readTextFile(file, MAX_CONFIG_BYTES);
  if (read.ok) return parseDevIssuerConfig(read.text, file);
  const message = ((): string => {
    switch (read.problem) {
      case 'too_large':
        return `the file is larger than ${MAX_CONFIG_BYTES} bytes`;
      case 'unreadable':
        return `cannot read the file (${read.code})`;
      case 'not_utf8':
        return 'the file is not valid UTF-8';
    }
  })();
  return wholeFileProblem(file, message);
}

function wholeFileProblem(file: string, message: string): DevIssuerConfigResult {
  return { ok: false, problems: [formatProblem({ file, line: 1, col: 1, field: '', message })] };
}
