// A Trace for people (aligned text, ✓/✗ per check, the fix in the user's words) and for machines (one JSON
// object whose field names are the Trace's own: `decision`, `reason`, `status`, `verified`, `hints`, …).
import type { SelectedBy } from '../policy/set.js';
import type { Transport } from '../vocabulary/index.js';
import type { PermissionTrace, Trace } from './trace.js';

const YES = '✓';
const NO = '✗';
const mark = (ok: boolean) => (ok ? YES : NO);
const list = (items: readonly string[], none = '(none)') => (items.length > 0 ? items.join(', ') : none);

/** How a policy of a set came to own the request, as `explain` says it. */
const CHOSEN_BY: Record<Exclude<SelectedBy, 'only policy'>, string> = {
  'context extension': "chosen by Envoy's context extension scopegate_policy",
  'destination principal': 'chosen by the destination principal (the called workload)',
  host: 'chosen by the host',
  default: 'chosen as the default: no other policy owns this request',
};

/** What an HTTP door asked about is, as `explain` says it; the gRPC door, the default, goes unsaid. */
const DOOR: Record<Exclude<Transport, 'grpc'>, string> = {
  http: 'http (serve --http): chooses the policy by host or default; carries no peer, destination principal or context extension',
  forward_auth:
    'forward-auth (serve --forward-auth): chooses the policy by host or default; carries no peer, destination principal, context extension or body',
};

/** The warning printed first, in capitals, whenever a token's signature was not checked. */
export const NOT_VERIFIED_WARNING =
  '!!! NOT VERIFIED: --no-verify decoded this token WITHOUT checking its signature. ' +
  'Anyone can forge these claims; the decision below assumes the issuer really signed them. !!!';

/**
 * Text that may come from a hostile token, as a terminal may safely show it: control characters (C0, DEL,
 * C1: cursor moves, screen clears, 8-bit CSI), line and paragraph separators and bidirectional controls
 * (which reorder what is shown) become `\uXXXX`, so nothing can redraw the screen or hide a line such as
 * the NOT VERIFIED warning. Printable text, `josé` included, is shown as it is.
 */
export function terminalSafe(text: string): string {
  return text.replace(
    UNSAFE_FOR_TERMINALS,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
const UNSAFE_FOR_TERMINALS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/**
 * The trace as JSON, with what JSON.stringify leaves raw (C1 and bidirectional controls, which can only be
 * inside strings) escaped too; its own line breaks are the only raw control characters, and stay.
 */
export function traceJson(trace: Trace): string {
  return JSON.stringify(trace, null, 2).split('\n').map(terminalSafe).join('\n');
}

export function renderTrace(trace: Trace): string {
  const lines: string[] = [...trace.warnings, ...(trace.warnings.length > 0 ? [''] : [])];
  const row = (label: string, text: string) => lines.push(`${label.padEnd(12)}${text}`.trimEnd());
  const more = (text: string) => lines.push(`${' '.repeat(12)}${text}`);

  if (trace.door !== 'grpc') row('door', DOOR[trace.door]);
  const { policy } = trace;
  if (!policy.chosen) {
    row('policy', `${NO} none: ${policy.detail}`);
  } else {
    row('policy', `${policy.name}: ${policy.file} (revision ${policy.revision})`);
    if (policy.chosenBy !== 'only policy') more(CHOSEN_BY[policy.chosenBy]);
  }
  if (!policy.chosen) {
    // Nothing else of the request was read.
  } else if (!trace.request.ok) {
    row('request', `${NO} ${trace.request.reason}: ${trace.request.detail}`);
  } else {
    row('request', `${YES} ${trace.request.method} ${trace.request.path}`);
  }

  const identity = trace.identity;
  if (identity) {
    const how =
      trace.credential === 'claims'
        ? 'claims given directly (no signature)'
        : trace.credential === 'none'
          ? 'no token'
          : trace.verified
            ? 'token, signature verified'
            : 'token, signature NOT verified';
    if (identity.ok) {
      row('identity', `${YES} ${how}`);
      const parts = [
        `subject ${identity.subject}`,
        ...(identity.client ? [`client ${identity.client}`] : []),
        ...(identity.issuer ? [`issuer ${identity.issuer}`] : []),
      ];
      more(parts.join(', '));
      if (identity.expiresAt) more(`expires ${identity.expiresAt}`);
    } else {
      row('identity', `${NO} ${how}: ${identity.reason}: ${identity.detail}`);
      for (const problem of identity.keyProblems ?? []) more(`keys: ${problem}`);
    }
  }

  if (trace.needs !== 'token') {
    row(
      'requires',
      trace.needs === 'peer'
        ? "the calling workload's identity (mTLS peer); no token is read"
        : 'a token and the calling workload (mTLS peer), each holding every permission and location',
    );
  }
  const peer = trace.peer;
  if (peer?.ok) {
    row('peer', `${YES} ${peer.id}${peer.entry === peer.id ? '' : ` (listed as ${peer.entry})`}`);
    more(`roles: ${list(peer.roles)}; locations: ${list(peer.locations)}`);
    if (peer.lacking.length > 0) more(`${NO} no role of the peer grants ${list(peer.lacking)}`);
  } else if (peer) {
    row('peer', `${NO} ${peer.reason}: ${peer.detail}`);
  }

  const route = trace.route;
  if (route) {
    if (route.matched) {
      const params = Object.entries(route.params).map(([k, v]) => `${k}=${v}`);
      row(
        'route',
        `${YES} ${route.name} (${route.methods.join('|')} ${route.template})${params.length > 0 ? ` ${params.join(' ')}` : ''}`,
      );
    } else {
      row('route', `${NO} no route matches this method and path`);
    }
  }

  const scopes = trace.scopes;
  if (scopes) {
    row('scopes', `token: ${list(scopes.token)}`);
    const client = scopes.client;
    // With the policy's default (unlistedClients: deny) an unlisted client is the decision itself.
    const unlisted =
      trace.reason === 'client_unknown' ? ` ${NO} client_unknown` : ' (scopes are not narrowed)';
    if (client === undefined) more(`client: the token names none${unlisted}`);
    else if (!client.listed) more(`client ${client.id}: not listed in the policy${unlisted}`);
    else more(`client ${client.id} may use: ${list(client.allowed ?? [])}`);
    more(`effective: ${list(scopes.effective)}`);
  }

  const grant = trace.grantType;
  if (grant) {
    const got = grant.token ?? '(none in the token)';
    row(
      'grant type',
      grant.allowed
        ? `${mark(grant.ok)} ${got} (client ${scopes?.client?.id} may use ${list(grant.allowed)})`
        : `${YES} ${got} (any grant type is accepted)`,
    );
  }

  const roles = trace.roles;
  if (roles) {
    if (!roles.checked) row('roles', 'not checked (the policy has no roles section)');
    else {
      row('roles', `from the token: ${list(roles.token)}`);
      more(
        `from the policy for ${trace.identity?.ok ? trace.identity.subject : 'the subject'}: ${list(roles.subject)}`,
      );
    }
  }

  if (trace.permissions) {
    row('permissions', trace.permissions.length === 0 ? '(the route requires none)' : '');
    const subject = trace.identity?.ok ? trace.identity.subject : 'the subject';
    for (const permission of trace.permissions) lines.push(...renderPermission(permission, subject));
  }

  const locations = trace.locations;
  if (locations) {
    if (!locations.source) row('locations', 'the route reads none');
    else {
      const results = locations.results.map((r) => `${r.location} ${mark(r.ok)}`);
      row(
        'locations',
        `from ${locations.source}: ${results.length > 0 ? results.join(', ') : '(none found)'}`,
      );
      if (locations.problem) more(`${NO} ${locations.problem.reason}: ${locations.problem.detail}`);
      more(`granted to the subject: ${list(locations.grantedToSubject)}`);
      if (locations.grantedByToken.length > 0)
        more(`granted by the token: ${list(locations.grantedByToken)}`);
    }
  }

  lines.push('');
  const verdict =
    trace.decision === 'allow'
      ? `ALLOW (${trace.reason})`
      : trace.decision === 'dry_run_deny'
        ? `DRY RUN: would deny ${trace.reason}; the request goes through (mode: dry_run)`
        : `DENY ${trace.reason} (HTTP ${trace.status})`;
  row('decision', verdict);
  if (trace.decision !== 'allow') more(trace.detail);
  for (const hint of trace.hints) row('fix', hint);
  for (const hint of trace.alsoNeeded) row('then', hint);
  // Each line through terminalSafe: claims, paths and details may carry anything the token or request did.
  return lines.map(terminalSafe).join('\n');
}

function renderPermission(permission: PermissionTrace, subject: string): string[] {
  const indent = ' '.repeat(2);
  const lines = [`${indent}${permission.permission}`];
  const scopes = permission.byScope.scopes.map((grant) => {
    const why = grant.effective
      ? 'in the token'
      : grant.inToken
        ? 'in the token, but the client may not use it'
        : grant.clientAllows === false
          ? 'not in the token, and the client may not use it'
          : 'not in the token';
    return `${grant.scope} ${mark(grant.effective)} (${why})`;
  });
  lines.push(
    `${indent}  by scope ${mark(permission.byScope.ok)}  ${scopes.length > 0 ? scopes.join('; ') : 'no scope in the policy grants it'}`,
  );
  if (permission.byRole.checked) {
    const roles = permission.byRole.roles.map((grant) => {
      const sources = grant.from.map((from) =>
        from === 'token' ? "in the token's roles" : `the policy gives it to ${subject}`,
      );
      const why = grant.held ? sources.join(', and ') : `${subject} does not have it`;
      return `${grant.role} ${mark(grant.held)} (${why})`;
    });
    lines.push(
      `${indent}  by role  ${mark(permission.byRole.ok)}  ${roles.length > 0 ? roles.join('; ') : 'no role in the policy grants it'}`,
    );
  }
  return lines;
}
