// The e2e tests' view of the shipped stack (src/dev/stack.ts): the same setup `npm run demo` runs, with the
// support thread's clients by nickname and Envoy required (a failure under CI=true, see envoy-required.ts).
import type { RunningEnvoy } from '../../src/dev/envoy.js';
import {
  type EnvoyVariant,
  type HttpResult,
  type Stack as ShippedStack,
  type StackOptions,
  startStack as startShippedStack,
} from '../../src/dev/stack.js';
import { requireEnvoy } from './envoy-required.js';

export type { HttpResult } from '../../src/dev/stack.js';

/** The clients of examples/inventory/dev-issuer.yaml, by the role they play in the thread. */
const CLIENT_IDS = {
  sync: 'inventory-sync',
  // The IdP granted inventory.write to the stock-report client, but the gateway policy does not let it use it.
  stockReport: 'stock-report',
  // A new integration whose service account was never given the Inventory Transaction Manager role.
  newIntegration: 'new-integration',
} as const;
type ClientName = keyof typeof CLIENT_IDS;

export interface Stack extends Omit<ShippedStack, 'clientToken'> {
  /** A token from the issuer's token endpoint (client_credentials), as the thread's service account got it. */
  clientToken(client: ClientName, scope: string): Promise<string>;
}

export async function startStack(
  variant: EnvoyVariant,
  options: Omit<StackOptions, 'variant' | 'envoyBin'> = {},
): Promise<Stack> {
  const stack = await startShippedStack({ envoyBin: requireEnvoy(), variant, ...options });
  return { ...stack, clientToken: (client, scope) => stack.clientToken(CLIENT_IDS[client], scope) };
}

export const transaction = (location: string, extra: Record<string, unknown> = {}) => ({
  location,
  item: 'ITEM001',
  quantity: 10,
  ...extra,
});

/** The id of the transaction the upstream says it created; throws (failing the test) when there is none. */
export function createdId(answer: HttpResult): string {
  const id = (answer.json?.transaction as { id?: unknown } | undefined)?.id;
  if (typeof id !== 'string')
    throw new Error(`no transaction created: ${answer.status} ${answer.text.slice(0, 200)}`);
  return id;
}

/**
 * The sum of Envoy's stats whose full names match `pattern` (counters and gauges): what never reaches the access
 * log, such as a refused handshake.
 */
export async function envoyCounter(
  front: { readonly envoy: RunningEnvoy },
  pattern: RegExp,
): Promise<number> {
  const stats = await (await fetch(`${front.envoy.adminUrl}/stats?format=json`)).json();
  const found = (stats as { stats: Array<{ name: string; value?: number }> }).stats.filter((s) =>
    pattern.test(s.name),
  );
  return found.reduce((sum, s) => sum + (s.value ?? 0), 0);
}
