// The inventory stand-in behind Envoy, over real HTTP on loopback: it records what the service account wrote
// together with the identity headers scopegate added (decoded as the UTF-8 scopegate sends), answers every
// route of the example policy, and it is bounded like everything else.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type InventoryUpstream,
  itemsAt,
  MAX_BODY_BYTES,
  MAX_TRANSACTIONS,
  type ReceivedIdentity,
  type RecordedTransaction,
  startInventoryUpstream,
} from '../../../src/dev/upstream.js';

const IDENTITY = {
  'x-scopegate-subject': 'svc-inventory-sync',
  'x-scopegate-client': 'inventory-sync',
  'x-scopegate-issuer': 'https://dev-issuer.scopegate.local/',
  'x-scopegate-route': 'create_transaction',
  'x-scopegate-policy': 'inventory',
};
const JSON_TYPE = { 'content-type': 'application/json' };

/** The fields the upstream's JSON answers carry (each route fills some). */
interface UpstreamJson {
  transaction: RecordedTransaction;
  transactions: RecordedTransaction[];
  received_identity: ReceivedIdentity;
  received_scopegate_headers: string[];
  location: string;
  items: unknown;
  status: string;
}

let upstream: InventoryUpstream;
beforeAll(async () => {
  upstream = await startInventoryUpstream({ port: 0 });
});
afterAll(async () => upstream?.close());

async function call(
  method: string,
  path: string,
  init: { headers?: Record<string, string>; body?: string } = {},
) {
  const response = await fetch(upstream.url + path, { method, ...init });
  return {
    status: response.status,
    headers: response.headers,
    json: (await response.json()) as UpstreamJson,
  };
}

const post = (body: unknown, headers: Record<string, string> = IDENTITY) =>
  call('POST', '/api/inventory/transactions', {
    headers: { ...JSON_TYPE, ...headers },
    body: JSON.stringify(body),
  });

describe('what the service account wrote, and who Envoy said it was', () => {
  it('POST records the transaction with the x-scopegate identity it arrived with (201 + location)', async () => {
    const before = upstream.transactions().length;
    const sent = { location: 'WH01', item: 'ITEM001', quantity: 10 };
    const answer = await post(sent);
    expect(answer.status).toBe(201);
    const id = answer.json.transaction.id;
    expect(answer.headers.get('location')).toBe(`/api/inventory/transactions/${id}`);
    expect(answer.json.received_identity).toEqual({
      subject: 'svc-inventory-sync',
      client: 'inventory-sync',
      issuer: 'https://dev-issuer.scopegate.local/',
      route: 'create_transaction',
      policy: 'inventory',
      peer: null,
    });
    const recorded = upstream.transactions();
    expect(recorded).toHaveLength(before + 1);
    expect(recorded.at(-1)).toEqual({
      id,
      body: sent,
      received_identity: {
        subject: 'svc-inventory-sync',
        client: 'inventory-sync',
        issuer: 'https://dev-issuer.scopegate.local/',
        route: 'create_transaction',
        policy: 'inventory',
        peer: null,
      },
      version: 1,
    });
  });

  it('a request that reached it without identity headers says so with nulls', async () => {
    const answer = await call('GET', '/api/inventory/transactions');
    expect(answer.status).toBe(200);
    expect(answer.json.received_identity).toEqual({
      subject: null,
      client: null,
      issuer: null,
      route: null,
      policy: null,
      peer: null,
    });
  });

  it('names every x-scopegate-* and x_scopegate_* header it received, not only the identity ones', async () => {
    const answer = await call('GET', '/api/inventory/transactions', {
      headers: {
        ...IDENTITY,
        'X-Scopegate-Meta-Reason': 'allowed',
        x_scopegate_subject: 'admin',
        other: 'x',
      },
    });
    expect(answer.json.received_scopegate_headers).toEqual([
      'x-scopegate-client',
      'x-scopegate-issuer',
      'x-scopegate-meta-reason',
      'x-scopegate-policy',
      'x-scopegate-route',
      'x-scopegate-subject',
      'x_scopegate_subject',
    ]);
    const none = await call('GET', '/api/inventory/nowhere');
    expect(none.status).toBe(404);
    expect(none.json.received_scopegate_headers).toEqual([]);
  });

  it('GET by id finds what was posted; an unknown id is 404', async () => {
    const created = await post({ location: 'WH02', item: 'ITEM002', quantity: 3 });
    const id = created.json.transaction.id;
    const found = await call('GET', `/api/inventory/transactions/${id}`, {
      headers: { 'x-scopegate-route': 'get_transaction' },
    });
    expect(found.status).toBe(200);
    expect(found.json.transaction.body).toEqual({ location: 'WH02', item: 'ITEM002', quantity: 3 });
    expect(found.json.received_identity.route).toBe('get_transaction');
    expect((await call('GET', '/api/inventory/transactions/txn-999999')).status).toBe(404);
  });

  it('the list shows every kept transaction', async () => {
    const list = await call('GET', '/api/inventory/transactions');
    expect(list.json.transactions.map((t) => t.id)).toEqual(upstream.transactions().map((t) => t.id));
  });

  it('PUT replaces a transaction (200, version 2, the updater recorded); PUT on an unknown id is 404', async () => {
    const created = await post({ location: 'WH01', item: 'ITEM003', quantity: 1 });
    const id = created.json.transaction.id;
    const updater = { ...IDENTITY, 'x-scopegate-route': 'update_transaction' };
    const updated = await call('PUT', `/api/inventory/transactions/${id}`, {
      headers: { ...JSON_TYPE, ...updater },
      body: JSON.stringify({ location: 'WH01', item: 'ITEM003', quantity: 7 }),
    });
    expect(updated.status).toBe(200);
    const kept = upstream.transactions().find((t) => t.id === id);
    expect(kept?.version).toBe(2);
    expect(kept?.body).toEqual({ location: 'WH01', item: 'ITEM003', quantity: 7 });
    expect(kept?.received_identity.route).toBe('update_transaction');
    const missing = await call('PUT', '/api/inventory/transactions/txn-999999', {
      headers: JSON_TYPE,
      body: JSON.stringify({ location: 'WH01' }),
    });
    expect(missing.status).toBe(404);
  });

  it('items at a location are the posted quantities summed per item', async () => {
    await post({ location: 'EU-FR1', item: 'ITEM010', quantity: 4 });
    await post({ location: 'EU-FR1', item: 'ITEM010', quantity: 5 });
    await post({ location: 'EU-FR1', item: 'ITEM011', quantity: 1 });
    await post({ location: 'WH01', item: 'ITEM010', quantity: 100 });
    const answer = await call('GET', '/api/inventory/locations/EU-FR1/items', {
      headers: { 'x-scopegate-route': 'list_location_items' },
    });
    expect(answer.status).toBe(200);
    expect(answer.json.location).toBe('EU-FR1');
    expect(answer.json.items).toEqual([
      { item: 'ITEM010', quantity: 9 },
      { item: 'ITEM011', quantity: 1 },
    ]);
  });

  it('healthz answers 200', async () => {
    const answer = await call('GET', '/healthz');
    expect(answer.status).toBe(200);
    expect(answer.json.status).toBe('ok');
  });
});

describe('what it refuses', () => {
  it('an unknown path is 404 and a known path with the wrong method 405 naming the allowed ones', async () => {
    expect((await call('GET', '/api/inventory/nothing-here')).status).toBe(404);
    expect((await call('GET', '/api/inventory/transactions/')).status).toBe(404);
    const wrong = await call('DELETE', '/api/inventory/transactions');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET, POST');
  });

  it('bad JSON, a non-object and duplicate keys are 400 and record nothing', async () => {
    const before = upstream.transactions().length;
    const send = (body: string) =>
      call('POST', '/api/inventory/transactions', { headers: { ...JSON_TYPE, ...IDENTITY }, body });
    expect((await send('{"location":')).status).toBe(400);
    expect((await send('[1,2,3]')).status).toBe(400);
    const duplicate = await send('{"location":"WH01","location":"WH99"}');
    expect(duplicate.status).toBe(400);
    expect(duplicate.json.received_identity.subject).toBe('svc-inventory-sync');
    expect(upstream.transactions()).toHaveLength(before);
  });

  it('a body that is not application/json is 415', async () => {
    const answer = await call('POST', '/api/inventory/transactions', {
      headers: { 'content-type': 'text/plain' },
      body: '{"location":"WH01"}',
    });
    expect(answer.status).toBe(415);
  });

  it('a body over 1 MiB is 413; exactly 1 MiB is accepted', async () => {
    const padded = (bytes: number) => {
      const shell = JSON.stringify({ location: 'WH01', pad: '' });
      return JSON.stringify({ location: 'WH01', pad: 'x'.repeat(bytes - shell.length) });
    };
    expect(Buffer.byteLength(padded(MAX_BODY_BYTES))).toBe(MAX_BODY_BYTES);
    const atCap = await call('POST', '/api/inventory/transactions', {
      headers: JSON_TYPE,
      body: padded(MAX_BODY_BYTES),
    });
    expect(atCap.status).toBe(201);
    const over = await call('POST', '/api/inventory/transactions', {
      headers: JSON_TYPE,
      body: padded(MAX_BODY_BYTES + 1),
    });
    expect(over.status).toBe(413);
  });
});

describe('bounded memory', () => {
  it(`keeps at most ${MAX_TRANSACTIONS} transactions, dropping the oldest`, async () => {
    const own = await startInventoryUpstream();
    try {
      const total = MAX_TRANSACTIONS + 5;
      let next = 0;
      const worker = async () => {
        while (next < total) {
          const n = next++;
          const response = await fetch(`${own.url}/api/inventory/transactions`, {
            method: 'POST',
            headers: JSON_TYPE,
            body: JSON.stringify({ location: 'WH01', item: `ITEM${n}`, quantity: 1 }),
          });
          expect(response.status).toBe(201);
          await response.arrayBuffer();
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      const kept = own.transactions();
      expect(kept).toHaveLength(MAX_TRANSACTIONS);
      // The first five created are gone; the newest is kept.
      const ids = new Set(kept.map((t) => t.id));
      for (let i = 1; i <= 5; i++) expect(ids.has(`txn-${i}`)).toBe(false);
      expect(ids.has('txn-6')).toBe(true);
      expect(ids.has(`txn-${total}`)).toBe(true);
    } finally {
      await own.close();
    }
  }, 60_000);
});

describe('stock, read the three ways the example policy finds a location', () => {
  it('GET /api/inventory/stock?location= sums what was posted there, per item', async () => {
    const own = await startInventoryUpstream();
    try {
      const posted = (body: unknown) =>
        fetch(`${own.url}/api/inventory/transactions`, {
          method: 'POST',
          headers: JSON_TYPE,
          body: JSON.stringify(body),
        });
      await posted({ location: 'WH02', item: 'ITEM020', quantity: 2 });
      await posted({ location: 'WH02', item: 'ITEM020', quantity: 3 });
      await posted({ location: 'WH03', item: 'ITEM020', quantity: 50 });
      const stock = await fetch(`${own.url}/api/inventory/stock?location=WH02`);
      expect(stock.status).toBe(200);
      expect(await stock.json()).toMatchObject({
        location: 'WH02',
        items: [{ item: 'ITEM020', quantity: 5 }],
      });
      const none = await (await fetch(`${own.url}/api/inventory/stock`)).json();
      expect(none).toMatchObject({ location: '', items: [] });
    } finally {
      await own.close();
    }
  });

  it('GET /api/inventory/stock/summary totals the location named in x-location', async () => {
    const own = await startInventoryUpstream();
    try {
      for (const [item, quantity] of [
        ['ITEM030', 4],
        ['ITEM031', 6],
      ] as const)
        await fetch(`${own.url}/api/inventory/transactions`, {
          method: 'POST',
          headers: JSON_TYPE,
          body: JSON.stringify({ location: 'EU-DE1', item, quantity }),
        });
      const summary = await fetch(`${own.url}/api/inventory/stock/summary`, {
        headers: { 'x-location': 'EU-DE1', 'x-scopegate-route': 'stock_summary' },
      });
      expect(summary.status).toBe(200);
      expect(await summary.json()).toMatchObject({
        location: 'EU-DE1',
        total: 10,
        received_identity: { route: 'stock_summary' },
      });
      expect(await (await fetch(`${own.url}/api/inventory/stock/summary`)).json()).toMatchObject({
        location: '',
        total: 0,
      });
    } finally {
      await own.close();
    }
  });

  it('the stock routes only read: another method is 405 naming GET', async () => {
    for (const path of ['/api/inventory/stock', '/api/inventory/stock/summary']) {
      const answer = await call('POST', path, { headers: JSON_TYPE, body: '{}' });
      expect(answer.status, path).toBe(405);
      expect(answer.headers.get('allow'), path).toBe('GET');
    }
  });
});

describe('the identity echo', () => {
  it('decodes the identity headers as the UTF-8 scopegate sends, not as Latin-1', async () => {
    // An HTTP client sends header bytes as given; a Latin-1 string of the UTF-8 bytes puts those bytes on the wire.
    const utf8 = (text: string) => Buffer.from(text, 'utf8').toString('latin1');
    const answer = await call('GET', '/api/inventory/transactions', {
      headers: {
        'x-scopegate-subject': utf8('josé'),
        'x-scopegate-client': utf8('倉庫-sync'),
        'x-scopegate-route': 'list_transactions',
      },
    });
    expect(answer.json.received_identity).toEqual({
      subject: 'josé',
      client: '倉庫-sync',
      issuer: null,
      route: 'list_transactions',
      policy: null,
      peer: null,
    });
  });
});

describe('what it refuses to store', () => {
  it('a body that is not UTF-8 is 400 and records nothing', async () => {
    const before = upstream.transactions().length;
    const response = await fetch(`${upstream.url}/api/inventory/transactions`, {
      method: 'POST',
      headers: JSON_TYPE,
      body: Buffer.from([0x7b, 0x22, 0x6c, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: 'bad_request', message: 'the body is not UTF-8' });
    expect(upstream.transactions()).toHaveLength(before);
  });

  it('a malformed escape in a path parameter is no route (404), not a crash', async () => {
    expect((await call('GET', '/api/inventory/transactions/%E0%A4%A')).status).toBe(404);
    expect((await call('GET', '/api/inventory/locations/%ZZ/items')).status).toBe(404);
  });
});

describe('itemsAt', () => {
  const recorded = (body: Record<string, unknown>, n: number): RecordedTransaction => ({
    id: `txn-${n}`,
    body,
    received_identity: { subject: null, client: null, issuer: null, route: null, policy: null, peer: null },
    version: 1,
  });

  it('sums quantities per item at exactly that location, in first-seen order, skipping malformed entries', () => {
    const transactions = [
      { location: 'WH01', item: 'B', quantity: 1 },
      { location: 'WH01', item: 'A', quantity: 2 },
      { location: 'WH01', item: 'B', quantity: 3 },
      { location: 'wh01', item: 'A', quantity: 100 },
      { location: 'WH01', item: 'A', quantity: '7' },
      { location: 'WH01', quantity: 9 },
      { location: 'WH02', item: 'A', quantity: 5 },
    ].map(recorded);
    expect(itemsAt(transactions, 'WH01')).toEqual([
      { item: 'B', quantity: 4 },
      { item: 'A', quantity: 2 },
    ]);
    expect(itemsAt(transactions, 'WH09')).toEqual([]);
  });
});
