// The front door `explain` and `test` judge a request as (`--door`, a case's `door`): Envoy's gRPC ext_authz,
// the default, or one of serve's HTTP doors. An HTTP door chooses the policy by host and default only and
// carries no peer, destination principal or context extension; forward auth carries no body either. What a
// door cannot carry is refused when asked for, never dropped: the answer would be one the server never gives.
import { carriesBody, carriesEnvoyAttributes, type Transport } from '../vocabulary/index.js';
import type { HttpRequestSpec } from './identity.js';

/** The doors by the names serve's flags give them (`--http`, `--forward-auth`; gRPC is always on). */
const DOORS = { grpc: 'grpc', http: 'http', 'forward-auth': 'forward_auth' } as const satisfies Record<
  string,
  Transport
>;
export const DOOR_NAMES = Object.keys(DOORS) as ReadonlyArray<keyof typeof DOORS>;

/** The transport a door name stands for; undefined for a name that is no door. */
export function doorNamed(name: string): Transport | undefined {
  return Object.hasOwn(DOORS, name) ? DOORS[name as keyof typeof DOORS] : undefined;
}

/** What of a request a door may not carry, in the user's words, and the doors that do carry it. */
const UNCARRIED = {
  peer: { what: "the calling workload's identity (mTLS peer)", carriedBy: ['grpc'] },
  destinationPrincipal: { what: 'a destination principal', carriedBy: ['grpc'] },
  contextExtensions: { what: "Envoy's context extensions", carriedBy: ['grpc'] },
  body: { what: 'a body', carriedBy: ['grpc', 'http'] },
} as const;
export type Uncarried = keyof typeof UNCARRIED;

/** Why `part` cannot be asked of the door named `name`, and what to do instead; `spell` writes a door choice. */
export function uncarriedProblem(part: Uncarried, name: string, spell: (name: string) => string): string {
  const { what, carriedBy } = UNCARRIED[part];
  return `${spell(name)} never carries ${what}: leave it out, or use ${carriedBy.map(spell).join(' or ')}`;
}
/** The parts the request sets that the door cannot carry; empty when it carries them all. */
export function uncarried(transport: Transport, request: HttpRequestSpec): Uncarried[] {
  const parts: Uncarried[] = [];
  if (!carriesEnvoyAttributes(transport)) {
    if (request.peer !== undefined) parts.push('peer');
    if (request.destinationPrincipal !== undefined) parts.push('destinationPrincipal');
    if (request.contextExtensions !== undefined) parts.push('contextExtensions');
  }
  if (!carriesBody(transport) && request.body !== undefined) parts.push('body');
  return parts;
}
