// Every issuer's key store, one per distinct issuer configuration (issuer name + key source), so a policy
// reload that keeps its issuers reuses the loaded keys instead of refetching them; and whether they are all
// ready to verify tokens (for /readyz and start-up).
import { keySource } from '../policy/compile.js';
import type { CompiledIssuer } from '../policy/types.js';
import { KeyStore, type KeyStoreOptions } from './key-store.js';

type IssuerKeys = Pick<CompiledIssuer, 'issuer' | 'jwks'>;

export class KeyRegistry {
  private readonly stores = new Map<string, KeyStore>();
  private started = false;

  constructor(private readonly options: KeyStoreOptions = {}) {}

  storeFor(issuer: IssuerKeys): KeyStore {
    const id = storeId(issuer);
    let store = this.stores.get(id);
    if (store === undefined) {
      store = new KeyStore(issuer, this.options);
      this.stores.set(id, store);
      if (this.started) void store.start();
    }
    return store;
  }

  /** After a policy reload: closes and forgets the stores no current issuer uses, so readiness tracks the policy. */
  retainOnly(issuers: ReadonlyArray<IssuerKeys>): void {
    const keep = new Set(issuers.map(storeId));
    for (const [id, store] of this.stores) {
      if (!keep.has(id)) {
        store.close();
        this.stores.delete(id);
      }
    }
  }

  /**
   * Initial loads of every store (and of any added later). Given a policy's issuers, first makes the
   * registry hold exactly their stores (as after a reload). Never throws; waits at most one fetch timeout.
   */
  async start(issuers?: ReadonlyArray<IssuerKeys>): Promise<void> {
    if (issuers !== undefined) {
      for (const issuer of issuers) this.storeFor(issuer);
      this.retainOnly(issuers);
    }
    this.started = true;
    await Promise.all([...this.stores.values()].map((store) => store.start()));
  }

  /** Every issuer has a usable key set (for /readyz). */
  ready(): boolean {
    return [...this.stores.values()].every((store) => store.hasKeys());
  }

  /**
   * Why the given issuers (default: every store) cannot verify tokens yet, one sentence each; empty when
   * ready. Safe to show: names issuers, never URLs or keys.
   */
  problems(issuers?: ReadonlyArray<IssuerKeys>): string[] {
    // Many policies of a set may name one issuer: it is one store, said once.
    const wanted = issuers === undefined ? [...this.stores.keys()] : [...new Set(issuers.map(storeId))];
    const problems: string[] = [];
    for (const id of wanted) {
      const store = this.stores.get(id);
      if (store === undefined) {
        problems.push(`issuer ${id.split('\n')[0]}: key store not started`);
      } else if (!store.hasKeys()) {
        problems.push(
          `issuer ${store.issuer}: no usable signing keys (${store.lastError() ?? 'still loading'})`,
        );
      }
    }
    return problems;
  }

  /** Per-issuer state for readiness output: never includes key material or the JWKS URL. */
  status(): Array<{ issuer: string; keys: number; error?: string }> {
    return [...this.stores.values()].map((store) => {
      const error = store.lastError();
      return { issuer: store.issuer, keys: store.keyCount(), ...(error !== undefined && { error }) };
    });
  }

  close(): void {
    for (const store of this.stores.values()) store.close();
    this.stores.clear();
    this.started = false;
  }
}

function storeId(issuer: IssuerKeys): string {
  return `${issuer.issuer}\n${keySource(issuer)}`;
}
