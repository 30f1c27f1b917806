// A stand-in for the inventory API behind Envoy (the routes of examples/inventory/policy.yaml), so the demo
// and the e2e tests have a real upstream. It trusts nothing about authorization (that is scopegate's job) but
// echoes the x-scopegate-* identity headers it received in every answer (and the names of all x-scopegate-*
// headers), so a test can see exactly what Envoy forwarded. Everything is in memory and bounded: request bodies, transaction count and stored bytes.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { parseStrictJson } from '../request/json.js';
import { listenHttp } from '../server/admin.js';
import { readBody } from './http.js';

/** Largest request body accepted (larger → 413 before parsing). */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Most transactions kept; the oldest is dropped first. */
export const MAX_TRANSACTIONS = 10_000;
/** Most body bytes kept across all transactions, so 10,000 bodies of 1 MiB cannot exhaust memory. */
export const MAX_STORED_BYTES = 64 * 1024 * 1024;

/** The identity headers scopegate adds on allow, as this upstream received them (null when absent). */
export interface ReceivedIdentity {
  readonly subject: string | null;
  readonly client: string | null;
  readonly issuer: string | null;
  readonly route: string | null;
  readonly policy: string | null;
  readonly peer: string | null;
}

export interface RecordedTransaction {
  readonly id: string;
  /** The JSON object the caller sent (on update: the latest one). */
  readonly body: Readonly<Record<string, unknown>>;
  /** Who wrote it (on update: who wrote the latest version). */
  readonly received_identity: ReceivedIdentity;
  /** 1 when created, +1 on each update. */
  readonly version: number;
}

export interface InventoryUpstream {
  /** `http://HOST:PORT` */
  readonly url: string;
  readonly port: number;
  /** The transactions kept, oldest first. */
  transactions(): ReadonlyArray<RecordedTransaction>;
  close(): Promise<void>;
}

export interface InventoryUpstreamOptions {
  /** Default 127.0.0.1: a demo upstream has no business on every interface. */
  readonly host?: string;
  /** Default 0 (a free port). */
  readonly port?: number;
  /**
   * Called with every request as it arrives, before it is answered: a test sees all its headers (say a
   * client's `x_scopegate_subject`, which `received_identity` does not name).
   */
  readonly onRequest?: (req: IncomingMessage) => void;
}

const IDENTITY_HEADERS = {
  subject: 'x-scopegate-subject',
  client: 'x-scopegate-client',
  issuer: 'x-scopegate-issuer',
  route: 'x-scopegate-route',
  policy: 'x-scopegate-policy',
  peer: 'x-scopegate-peer',
} as const;

export function receivedIdentity(req: IncomingMessage): ReceivedIdentity {
  // Node hands header values over as latin1 (one character per byte); scopegate sends identities as UTF-8.
  const header = (name: string): string | null => {
    const value = req.headers[name];
    return typeof value === 'string' ? Buffer.from(value, 'latin1').toString('utf8') : null;
  };
  return {
    subject: header(IDENTITY_HEADERS.subject),
    client: header(IDENTITY_HEADERS.client),
    issuer: header(IDENTITY_HEADERS.issuer),
    route: header(IDENTITY_HEADERS.route),
    policy: header(IDENTITY_HEADERS.policy),
    peer: header(IDENTITY_HEADERS.peer),
  };
}

/**
 * The names of every `x-scopegate-*` or `x_scopegate_*` header the request arrived with, sorted, each once:
 * a client-sent one that got through (not only the identity headers) shows here.
 */
export function receivedScopegateHeaders(req: IncomingMessage): string[] {
  const names = new Set<string>();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (name.startsWith('x-scopegate-') || name.startsWith('x_scopegate_')) names.add(name);
  }
  return [...names].sort();
}

/** In-memory transactions, insertion-ordered, with both a count and a byte budget. */
class TransactionStore {
  private readonly byId = new Map<string, { record: RecordedTransaction; bytes: number }>();
  private storedBytes = 0;
  private nextId = 1;

  create(body: Record<string, unknown>, identity: ReceivedIdentity, bytes: number): RecordedTransaction {
    const record = { id: `txn-${this.nextId++}`, body, received_identity: identity, version: 1 };
    this.byId.set(record.id, { record, bytes });
    this.storedBytes += bytes;
    this.evict();
    return record;
  }

  /** Replaces the body of a kept transaction; undefined when there is none with that id. */
  update(
    id: string,
    body: Record<string, unknown>,
    identity: ReceivedIdentity,
    bytes: number,
  ): RecordedTransaction | undefined {
    const kept = this.byId.get(id);
    if (!kept) return undefined;
    const record = { id, body, received_identity: identity, version: kept.record.version + 1 };
    // Map.set on an existing key keeps its place, so an update does not make a transaction "newer".
    this.byId.set(id, { record, bytes });
    this.storedBytes += bytes - kept.bytes;
    this.evict();
    return record;
  }

  get(id: string): RecordedTransaction | undefined {
    return this.byId.get(id)?.record;
  }

  list(): RecordedTransaction[] {
    return [...this.byId.values()].map((kept) => kept.record);
  }

  private evict(): void {
    for (const [id, kept] of this.byId) {
      if (this.byId.size <= MAX_TRANSACTIONS && this.storedBytes <= MAX_STORED_BYTES) return;
      this.byId.delete(id);
      this.storedBytes -= kept.bytes;
    }
  }
}

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly headers?: Record<string, string>;
}

interface RouteCall {
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage['headers'];
  readonly identity: ReceivedIdentity;
  /** The parsed JSON object, for routes that read a body. */
  readonly body: Record<string, unknown>;
  readonly bodyBytes: number;
  readonly store: TransactionStore;
}

interface Route {
  /** Path segments; `:name` captures one segment. */
  readonly pattern: readonly string[];
  readonly methods: Readonly<Record<string, { readsBody: boolean; handle: (call: RouteCall) => Answer }>>;
}

const notFound = (what: string): Answer => ({ status: 404, body: { error: 'not_found', message: what } });

const ROUTES: readonly Route[] = [
  {
    pattern: ['api', 'inventory', 'transactions'],
    methods: {
      GET: {
        readsBody: false,
        handle: ({ store }) => ({ status: 200, body: { transactions: store.list() } }),
      },
      POST: {
        readsBody: true,
        handle: ({ store, body, identity, bodyBytes }) => {
          const record = store.create(body, identity, bodyBytes);
          return {
            status: 201,
            body: { transaction: record },
            headers: { location: `/api/inventory/transactions/${encodeURIComponent(record.id)}` },
          };
        },
      },
    },
  },
  {
    pattern: ['api', 'inventory', 'transactions', ':id'],
    methods: {
      GET: {
        readsBody: false,
        handle: ({ store, params }) => {
          const record = store.get(params.id!);
          return record ? { status: 200, body: { transaction: record } } : notFound('no such transaction');
        },
      },
      PUT: {
        readsBody: true,
        handle: ({ store, params, body, identity, bodyBytes }) => {
          const record = store.update(params.id!, body, identity, bodyBytes);
          return record ? { status: 200, body: { transaction: record } } : notFound('no such transaction');
        },
      },
    },
  },
  {
    pattern: ['api', 'inventory', 'locations', ':location', 'items'],
    methods: {
      GET: {
        readsBody: false,
        handle: ({ store, params }) => ({
          status: 200,
          body: { location: params.location, items: itemsAt(store.list(), params.location!) },
        }),
      },
    },
  },
  {
    pattern: ['api', 'inventory', 'stock'],
    methods: {
      GET: {
        readsBody: false,
        handle: ({ store, query }) => {
          const location = query.get('location') ?? '';
          return { status: 200, body: { location, items: itemsAt(store.list(), location) } };
        },
      },
    },
  },
  {
    pattern: ['api', 'inventory', 'stock', 'summary'],
    methods: {
      GET: {
        readsBody: false,
        handle: ({ store, headers }) => {
          const location = typeof headers['x-location'] === 'string' ? headers['x-location'] : '';
          const items = itemsAt(store.list(), location);
          return { status: 200, body: { location, total: items.reduce((sum, i) => sum + i.quantity, 0) } };
        },
      },
    },
  },
  {
    // The orders service holding stock for a user (reserve_stock: the token's subject and the peer).
    pattern: ['api', 'inventory', 'reservations'],
    methods: {
      POST: {
        readsBody: true,
        handle: ({ body }) => ({ status: 201, body: { reservation: body } }),
      },
    },
  },
  {
    // Stock at every warehouse, for a reporting workload (stock_report: the peer alone).
    pattern: ['api', 'inventory', 'reports', 'stock'],
    methods: {
      GET: {
        readsBody: false,
        handle: ({ store }) => {
          const locations = [
            ...new Set(
              store
                .list()
                .map((t) => t.body.location)
                .filter((l) => typeof l === 'string'),
            ),
          ];
          return {
            status: 200,
            body: {
              stock: Object.fromEntries(locations.map((l) => [l, itemsAt(store.list(), l as string)])),
            },
          };
        },
      },
    },
  },
  {
    pattern: ['healthz'],
    methods: { GET: { readsBody: false, handle: () => ({ status: 200, body: { status: 'ok' } }) } },
  },
];

/** Stock at a location: the quantities of the recorded transactions there, summed per item. */
export function itemsAt(
  transactions: ReadonlyArray<RecordedTransaction>,
  location: string,
): Array<{ item: string; quantity: number }> {
  const totals = new Map<string, number>();
  for (const { body } of transactions) {
    if (body.location !== location || typeof body.item !== 'string' || typeof body.quantity !== 'number')
      continue;
    totals.set(body.item, (totals.get(body.item) ?? 0) + body.quantity);
  }
  return [...totals].map(([item, quantity]) => ({ item, quantity }));
}

function matchRoute(path: string): { route: Route; params: Record<string, string> } | undefined {
  const segments = path.split('/').slice(1);
  for (const route of ROUTES) {
    if (route.pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    const matched = route.pattern.every((part, i) => {
      const segment = segments[i]!;
      if (!part.startsWith(':')) return part === segment;
      if (segment === '') return false;
      try {
        params[part.slice(1)] = decodeURIComponent(segment);
        return true;
      } catch {
        return false;
      }
    });
    if (matched) return { route, params };
  }
  return undefined;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The request body as a JSON object, or the answer explaining why not. */
async function jsonObjectBody(
  req: IncomingMessage,
): Promise<{ ok: true; body: Record<string, unknown>; bytes: number } | { ok: false; answer: Answer }> {
  const refuse = (status: number, error: string, message: string) => ({
    ok: false as const,
    answer: { status, body: { error, message } },
  });
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') return refuse(415, 'unsupported_media_type', 'send application/json');
  const read = await readBody(req, MAX_BODY_BYTES);
  if (!read.ok) {
    return read.tooLarge
      ? refuse(413, 'payload_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`)
      : refuse(400, 'bad_request', 'the body could not be read');
  }
  let text: string;
  try {
    text = UTF8.decode(read.bytes);
  } catch {
    return refuse(400, 'bad_request', 'the body is not UTF-8');
  }
  // The same duplicate-refusing reader scopegate decides with, so what is stored is what was checked.
  const parsed = parseStrictJson(text, { maxBytes: MAX_BODY_BYTES, maxStringLength: MAX_BODY_BYTES });
  if (!parsed.ok) return refuse(400, 'bad_request', `the body is not valid JSON: ${parsed.problem}`);
  const value = parsed.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return refuse(400, 'bad_request', 'a transaction is a JSON object');
  return { ok: true, body: value as Record<string, unknown>, bytes: read.bytes.length };
}

function send(res: ServerResponse, identity: ReceivedIdentity, answer: Answer, close = false): void {
  const text =
    JSON.stringify({
      ...answer.body,
      received_identity: identity,
      received_scopegate_headers: receivedScopegateHeaders(res.req),
    }) + '\n';
  res
    .writeHead(answer.status, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      ...answer.headers,
      ...(close && { connection: 'close' }),
    })
    .end(text);
}

async function handle(store: TransactionStore, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const identity = receivedIdentity(req);
  const [path = '/', search = ''] = (req.url ?? '/').split('?', 2);
  const match = matchRoute(path);
  if (!match) return send(res, identity, notFound(`no route for ${req.method} ${path}`));
  const method = match.route.methods[req.method ?? ''];
  if (!method) {
    const allow = Object.keys(match.route.methods).join(', ');
    return send(res, identity, {
      status: 405,
      body: { error: 'method_not_allowed', message: `use ${allow}` },
      headers: { allow },
    });
  }
  let body: Record<string, unknown> = {};
  let bodyBytes = 0;
  if (method.readsBody) {
    const read = await jsonObjectBody(req);
    // An unread body stays on the connection, so a refused one closes it rather than being parsed as the
    // next request.
    if (!read.ok) return send(res, identity, read.answer, true);
    body = read.body;
    bodyBytes = read.bytes;
  }
  const query = new URLSearchParams(search);
  send(
    res,
    identity,
    method.handle({ params: match.params, query, headers: req.headers, identity, body, bodyBytes, store }),
  );
}

export async function startInventoryUpstream(
  options: InventoryUpstreamOptions = {},
): Promise<InventoryUpstream> {
  const store = new TransactionStore();
  const server: Server = createServer((req, res) => {
    options.onRequest?.(req);
    handle(store, req, res).catch(() => {
      if (!res.headersSent)
        send(res, receivedIdentity(req), { status: 500, body: { error: 'internal' } }, true);
      else res.destroy();
    });
  });
  const { host, port } = await listenHttp(server, options.host ?? '127.0.0.1', options.port ?? 0);
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    transactions: () => store.list(),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
