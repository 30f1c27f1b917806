// Shared pieces for the identity tests: a policy with just the identity parts filled in, request facts with
// only what the identity phase reads, and a clock the test moves by hand.
import { IssuerNames, Peers } from '../../../src/policy/compile.js';
import type { ClaimNames, CompiledIssuer, CompiledPolicy } from '../../../src/policy/types.js';
import type { RequestFacts } from '../../../src/request/types.js';

export const ISSUER = 'https://idp.example.test/';
export const AUDIENCE = 'https://gateway.example.test';

export const CLAIM_NAMES: ClaimNames = {
  subject: ['sub'],
  scopes: ['scope', 'scp'],
  roles: ['roles'],
  client: ['client_id', 'azp'],
  grantType: ['gty'],
  locations: ['locations'],
};

export function issuerConfig(
  jwks: CompiledIssuer['jwks'],
  overrides: Partial<CompiledIssuer> = {},
): CompiledIssuer {
  const settings = {
    issuer: ISSUER,
    audiences: [AUDIENCE],
    jwks,
    algorithms: ['RS256', 'ES256'],
    clockToleranceSeconds: 30,
    ...overrides,
  };
  // As compile.ts does: every setting a token is verified against, as one string.
  const { basis: _, ...checked } = settings as typeof settings & { basis?: string };
  return { ...checked, basis: overrides.basis ?? JSON.stringify(checked) };
}

export function identityPolicy(
  issuers: CompiledIssuer[],
  extra: Partial<Pick<CompiledPolicy, 'revision' | 'maxTokenBytes' | 'envoyJwtAuthn' | 'claims'>> = {},
): CompiledPolicy {
  return {
    name: 'policy',
    owns: { name: 'policy', hosts: [], destinationPrincipals: [], default: false, sites: {} },
    revision: 'rev-1',
    source: 'policy.yaml',
    mode: 'enforce',
    realm: 'scopegate',
    maxTokenBytes: 8192,
    issuers,
    issuerByName: new Map(issuers.map((issuer) => [issuer.issuer, issuer])),
    claims: CLAIM_NAMES,
    claimsKey: JSON.stringify(extra.claims ?? CLAIM_NAMES),
    scopes: new Map(),
    scopesGranting: new Map(),
    rolesGranting: new Map(),
    clients: new IssuerNames([]),
    unlistedClients: 'allow',
    subjects: new IssuerNames([]),
    peers: new Peers([]),
    identity: 'token',
    routes: [],
    matchRoute: () => undefined,
    ...extra,
  };
}

export function requestFacts(
  options: {
    authorization?: string;
    query?: Record<string, string[]>;
    jwtAuthn?: Record<string, unknown>;
  } = {},
): Pick<RequestFacts, 'headers' | 'query' | 'jwtAuthnPayloads'> {
  const headers = new Map<string, string>([[':method', 'GET']]);
  if (options.authorization !== undefined) headers.set('authorization', options.authorization);
  return {
    headers,
    query: new Map(Object.entries(options.query ?? {})),
    jwtAuthnPayloads: new Map(Object.entries(options.jwtAuthn ?? {})),
  };
}

/** A clock that only moves when the test says so; starts at the real time (whole seconds). */
export class ManualClock {
  ms = Math.floor(Date.now() / 1000) * 1000;
  readonly now = (): number => this.ms;
  get seconds(): number {
    return Math.floor(this.ms / 1000);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}
