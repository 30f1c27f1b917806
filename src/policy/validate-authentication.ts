// The `authentication` section of a policy: the realm, the token size cap, the issuers (their audiences,
// key set and algorithms), Envoy's jwt_authn, where claims are read from, and what an unlisted client gets.
// The issuers it lists are what `issuer:` on subjects and clients may name.
import { isSeq, type Node } from 'yaml';
import { unknownMessage } from '../config/problems.js';
import type { YamlReader } from '../config/yaml.js';
import type { ClaimSite, ClaimsDocument, IssuerDocument, PolicyDocument, UnlistedClients } from './types.js';
import { UNLISTED_CLIENTS } from './types.js';
import { claimKey } from './validate-match.js';
import type { DefinedNames } from './validate-names.js';

/** Asymmetric algorithms only: `none` and HS* (a shared secret verified with a public key) are never allowed. */
export const ALLOWED_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;

export const CLOCK_TOLERANCE_MAX_SECONDS = 300;
export const MAX_TOKEN_BYTES_RANGE = { min: 1024, max: 65536 } as const;

const CLAIM_KEYS = ['subject', 'scopes', 'roles', 'client', 'grantType', 'locations'] as const;

// The realm is quoted in `WWW-Authenticate: Bearer realm="…"`.
const REALM = /^[\x20\x21\x23-\x5B\x5D-\x7E]{1,128}$/;

/** `authentication`; defines the issuers that subjects and clients may name (null when the list is broken). */
export function readAuthentication(
  r: YamlReader,
  defined: DefinedNames,
  value: Node | null,
  sites: Record<string, ClaimSite>,
): PolicyDocument['authentication'] | undefined {
  const f = 'authentication';
  const s = r.section(value, f, {
    realm: false,
    maxTokenBytes: false,
    issuers: false,
    envoyJwtAuthn: false,
    claims: false,
    unlistedClients: false,
  });
  if (!s) return undefined;
  const out: PolicyDocument['authentication'] = {};
  if (s.unlistedClients) {
    const choice = r.string(s.unlistedClients.value, `${f}.unlistedClients`);
    if (choice !== undefined && (UNLISTED_CLIENTS as readonly string[]).includes(choice)) {
      out.unlistedClients = choice as UnlistedClients;
    } else if (choice !== undefined) {
      r.report(
        s.unlistedClients.value,
        `${f}.unlistedClients`,
        unknownMessage('choice', choice, UNLISTED_CLIENTS, true),
      );
    }
  }
  if (s.realm) {
    const realm = r.string(s.realm.value, `${f}.realm`);
    if (realm !== undefined && !REALM.test(realm)) {
      r.report(
        s.realm.value,
        `${f}.realm`,
        'realm must be 1 to 128 printable ASCII characters without " or \\ (it is quoted in WWW-Authenticate)',
      );
    } else if (realm !== undefined) out.realm = realm;
  }
  if (s.maxTokenBytes) {
    const n = r.integer(
      s.maxTokenBytes.value,
      `${f}.maxTokenBytes`,
      MAX_TOKEN_BYTES_RANGE.min,
      MAX_TOKEN_BYTES_RANGE.max,
    );
    if (n !== undefined) out.maxTokenBytes = n;
  }
  if (s.issuers) {
    const issuers = readIssuers(r, s.issuers.value, `${f}.issuers`, sites);
    if (issuers) out.issuers = issuers;
    // What `issuer:` on subjects and clients may name; null: the list is too broken to check against.
    defined.issuers = issuers ? issuers.map((i) => i.issuer) : null;
  }
  if (s.envoyJwtAuthn) {
    const e = r.section(s.envoyJwtAuthn.value, `${f}.envoyJwtAuthn`, { metadataKey: true });
    const key = e?.metadataKey && r.string(e.metadataKey.value, `${f}.envoyJwtAuthn.metadataKey`);
    if (key) out.envoyJwtAuthn = { metadataKey: key };
  }
  if (s.claims) {
    const c = r.section(s.claims.value, `${f}.claims`, Object.fromEntries(CLAIM_KEYS.map((k) => [k, false])));
    if (c) {
      const claims: ClaimsDocument = {};
      for (const k of CLAIM_KEYS) {
        const entry = c[k];
        if (!entry) continue;
        const names = r.stringList(entry.value, `${f}.claims.${k}`, { nonEmpty: true });
        if (names) claims[k] = names.map((n) => n.value);
      }
      out.claims = claims;
    }
  }
  const issuerList = s.issuers ? r.deref(s.issuers.value) : null;
  const hasIssuers = isSeq(issuerList) && issuerList.items.length > 0;
  if (!hasIssuers && !s.envoyJwtAuthn) {
    r.report(
      s.issuers?.value ?? r.deref(value),
      s.issuers ? `${f}.issuers` : f,
      'no way to authenticate callers: list at least one issuer, or set envoyJwtAuthn',
    );
  }
  return out;
}

/** The issuers; where each one's `jwks` is written goes in `sites` (one issuer has one key source in a set). */
function readIssuers(
  r: YamlReader,
  value: Node | null,
  f: string,
  sites: Record<string, ClaimSite>,
): IssuerDocument[] | undefined {
  const items = r.list(value, f);
  if (!items) return undefined;
  const out: IssuerDocument[] = [];
  const seen = new Map<string, Node>();
  items.forEach((item, i) => {
    const fi = `${f}[${i}]`;
    const s = r.section(item, fi, {
      issuer: true,
      audiences: true,
      jwks: true,
      algorithms: true,
      clockToleranceSeconds: false,
    });
    if (!s) return;
    const issuer = s.issuer && r.url(s.issuer.value, `${fi}.issuer`, 'issuer');
    if (issuer && s.issuer?.value) {
      const first = seen.get(issuer);
      if (first) {
        r.report(
          s.issuer.value,
          `${fi}.issuer`,
          `duplicate issuer "${issuer}" (first at line ${r.pos(first).line})`,
        );
      } else seen.set(issuer, s.issuer.value);
    }
    const audiences = s.audiences && r.stringList(s.audiences.value, `${fi}.audiences`, { nonEmpty: true });
    const jwks = s.jwks && readJwks(r, s.jwks.value, `${fi}.jwks`);
    const algorithms = s.algorithms && readAlgorithms(r, s.algorithms.value, `${fi}.algorithms`);
    let clockToleranceSeconds: number | undefined;
    if (s.clockToleranceSeconds) {
      clockToleranceSeconds = r.integer(
        s.clockToleranceSeconds.value,
        `${fi}.clockToleranceSeconds`,
        0,
        CLOCK_TOLERANCE_MAX_SECONDS,
      );
    }
    if (issuer && audiences && jwks && algorithms) {
      const { line, col } = r.pos(s.jwks?.value);
      sites[claimKey('issuer', issuer)] = { line, col, field: `${fi}.jwks` };
      out.push({
        issuer,
        audiences: audiences.map((a) => a.value),
        jwks,
        algorithms,
        ...(clockToleranceSeconds !== undefined ? { clockToleranceSeconds } : {}),
      });
    }
  });
  return out;
}

function readJwks(r: YamlReader, value: Node | null, f: string): IssuerDocument['jwks'] | undefined {
  const s = r.section(value, f, { uri: false, file: false });
  if (!s) return undefined;
  if (s.uri && s.file) {
    r.report(s.file.keyNode, `${f}.file`, 'jwks must have exactly one of "uri" or "file", not both');
    return undefined;
  }
  if (s.uri) {
    const uri = r.url(s.uri.value, `${f}.uri`, 'jwks uri');
    return uri ? { uri } : undefined;
  }
  if (s.file) {
    const file = r.string(s.file.value, `${f}.file`);
    return file ? { file } : undefined;
  }
  r.report(r.deref(value), f, 'jwks needs exactly one of "uri" (an http(s) URL) or "file" (a JWKS file)');
  return undefined;
}

function readAlgorithms(r: YamlReader, value: Node | null, f: string): string[] | undefined {
  const names = r.stringList(value, f, { nonEmpty: true, unique: true });
  if (!names) return undefined;
  let good = true;
  for (const { value: alg, node, field } of names) {
    if ((ALLOWED_ALGORITHMS as readonly string[]).includes(alg)) continue;
    good = false;
    if (alg.toLowerCase() === 'none') {
      r.report(node, field, 'algorithm "none" is never allowed: unsigned tokens prove nothing');
    } else if (/^HS\d+$/i.test(alg)) {
      r.report(
        node,
        field,
        `algorithm "${alg}" is not allowed: HMAC (HS*) needs a shared secret, and verifying it with a public key lets anyone forge tokens`,
      );
    } else {
      r.report(node, field, unknownMessage('algorithm', alg, ALLOWED_ALGORITHMS, true));
    }
  }
  return good ? names.map((n) => n.value) : undefined;
}
