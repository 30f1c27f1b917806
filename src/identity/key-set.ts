// One loaded JWKS: the signing keys jose will verify with, and which keys it publishes, so the caches can ask
// `publishes(ref)` on every hit (a token whose key has left the JWKS is never served from them). Keys are
// named by their RFC 7638 thumbprint (jose's calculateJwkThumbprint): computed for every key when a set is
// loaded, and for a key jose resolved when it is first seen, so the hot path only looks answers up.
import { calculateJwkThumbprint, createLocalJWKSet, type JWK } from 'jose';
import type { SigningKeyRef } from '../vocabulary/index.js';
import { KeyLoadError } from './errors.js';

/** Key types jose can verify JWS signatures with; `oct` (shared secrets) never belongs in a public JWKS. */
const SIGNING_KEY_TYPES = new Set(['RSA', 'EC', 'OKP']);
/** Private members: a JWKS that publishes them is broken, and such a key must not be used. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

export class KeySet {
  /** `publishes(ref)` answers, by ref: a ref is shared by every answer its token got. */
  private readonly answers = new WeakMap<SigningKeyRef, boolean>();

  private constructor(
    /** jose's key resolver over the usable keys. */
    readonly resolve: ReturnType<typeof createLocalJWKSet>,
    readonly keyCount: number,
    /** Every `kid` the set publishes. */
    readonly kids: ReadonlySet<string>,
    /** One publicationId per key (and kid): answers `publishes(ref)` with two lookups. */
    private readonly published: ReadonlySet<string>,
  ) {}

  /** A JWKS document's usable signing keys; rejects (with a safe message) when there are none. */
  static async fromJwks(text: string): Promise<KeySet> {
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch {
      throw new KeyLoadError('the key set is not valid JSON');
    }
    const keys = (document as { keys?: unknown } | null)?.keys;
    if (typeof document !== 'object' || document === null || !Array.isArray(keys)) {
      throw new KeyLoadError('the key set is not a JWKS (no "keys" array)');
    }
    const usable = keys.filter(isUsableSigningKey);
    if (usable.length === 0) throw new KeyLoadError('the key set has no usable signing keys');
    // A key jose cannot take a thumbprint of (a member missing) cannot verify a token either: nothing to list.
    const thumbprints = await Promise.all(
      usable.map((jwk) => calculateJwkThumbprint(jwk).catch(() => undefined)),
    );
    const published = new Set<string>();
    usable.forEach((jwk, index) => {
      const thumbprint = thumbprints[index];
      if (thumbprint === undefined) return;
      // Indexed with and without its kid, so a token that named none still finds it.
      for (const kid of jwk.kid === undefined ? [undefined] : [jwk.kid, undefined]) {
        published.add(publicationId(thumbprint, kid, jwk.alg));
      }
    });
    return new KeySet(
      createLocalJWKSet({ keys: usable }),
      usable.length,
      new Set(usable.flatMap((jwk) => (jwk.kid === undefined ? [] : [jwk.kid]))),
      published,
    );
  }

  /**
   * True when this set publishes the key a token was verified with (see SigningKeyRef): the same key
   * material, under the token's `kid` (or any, if it named none), allowing its `alg`. The issuer is the
   * store's to check.
   */
  publishes(ref: SigningKeyRef): boolean {
    let answer = this.answers.get(ref);
    if (answer === undefined) {
      const { published } = this;
      answer =
        published.has(publicationId(ref.thumbprint, ref.kid, ref.alg)) ||
        published.has(publicationId(ref.thumbprint, ref.kid, undefined));
      this.answers.set(ref, answer);
    }
    return answer;
  }
}

/** One entry of KeySet.published; `undefined` kid = "any kid", `undefined` alg = "the key allows any". */
function publicationId(thumbprint: string, kid: string | undefined, alg: string | undefined): string {
  return JSON.stringify([thumbprint, kid ?? null, alg ?? null]);
}

const thumbprints = new WeakMap<object, Promise<string | undefined>>();

/** Thumbprint of a key jose resolved (memoised per key object: jose reuses them). Undefined if not exportable. */
function thumbprintOfKey(key: unknown): Promise<string | undefined> {
  if (typeof key !== 'object' || key === null || key instanceof Uint8Array) return Promise.resolve(undefined);
  let thumbprint = thumbprints.get(key);
  if (thumbprint === undefined) {
    thumbprint = calculateJwkThumbprint(key as Parameters<typeof calculateJwkThumbprint>[0]).catch(
      () => undefined,
    );
    thumbprints.set(key, thumbprint);
  }
  return thumbprint;
}

/**
 * Names the key that verified a token (jose's resolved key, with the token's own `kid` and `alg`) as a
 * SigningKeyRef; undefined when it cannot tell, and then nothing built on the token is cached.
 */
export async function signingKeyRef(
  issuer: string,
  key: unknown,
  header: { readonly kid?: unknown; readonly alg?: unknown },
): Promise<SigningKeyRef | undefined> {
  const { kid, alg } = header;
  if (typeof alg !== 'string' || (kid !== undefined && typeof kid !== 'string')) return undefined;
  const thumbprint = await thumbprintOfKey(key);
  if (thumbprint === undefined) return undefined;
  return { issuer, thumbprint, alg, ...(kid !== undefined && { kid }) };
}

function isUsableSigningKey(key: unknown): key is JWK {
  if (typeof key !== 'object' || key === null || Array.isArray(key)) return false;
  const jwk = key as Record<string, unknown>;
  if (typeof jwk.kty !== 'string' || !SIGNING_KEY_TYPES.has(jwk.kty)) return false;
  if (jwk.use !== undefined && jwk.use !== 'sig') return false;
  if (jwk.kid !== undefined && typeof jwk.kid !== 'string') return false;
  if (jwk.alg !== undefined && typeof jwk.alg !== 'string') return false;
  // jose refuses these too; the published set must be exactly what jose will verify with, or a cached answer
  // could outlive a key the IdP withdrew by marking it non-verifying.
  if (jwk.ext !== undefined && typeof jwk.ext !== 'boolean') return false;
  if (jwk.key_ops !== undefined) {
    const ops = jwk.key_ops;
    if (!Array.isArray(ops) || !ops.includes('verify') || new Set(ops).size !== ops.length) return false;
    if (!ops.every((op) => typeof op === 'string')) return false;
  }
  return !PRIVATE_MEMBERS.some((member) => Object.hasOwn(jwk, member));
}
