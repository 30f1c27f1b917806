// What a replay found (`scopegate replay`): each record's recorded outcome beside its outcome under the
// candidate, tallied by kind of change (allow → deny, deny → allow, another reason, enforce ↔ dry-run), by
// route, by caller and by reason, with a few example records each; records that cannot be replayed, and
// lines that are not records, counted by why. Every table is bounded, so a million records take the memory
// of a few thousand names.
import type { LineProblem } from '../record/read.js';
import type { DecisionRecord } from '../record/types.js';
import { type Decision, decisionLabel } from '../vocabulary/index.js';
import type { Replayed } from './replay.js';

export const REPLAY_CHANGES = ['allow-to-deny', 'deny-to-allow', 'reason', 'enforcement'] as const;
export type ReplayChange = (typeof REPLAY_CHANGES)[number];
/** What `--fail-on` may name: the changes, and (opt-in) records that cannot be replayed or lines that are not. */
export const FAIL_ON_KINDS = [...REPLAY_CHANGES, 'cannot-replay', 'not-records'] as const;
export type FailOn = (typeof FAIL_ON_KINDS)[number];

const CHANGE_TITLES: Record<ReplayChange, string> = {
  'allow-to-deny': 'allow → deny',
  'deny-to-allow': 'deny → allow',
  reason: 'reason changed',
  enforcement: 'enforce ↔ dry-run',
};

/** Distinct names kept per table; the rest are counted under "(other)". */
const MAX_NAMES = 1000;

/** Counts by name, bounded. */
class Tally {
  private readonly counts = new Map<string, number>();
  add(name: string): void {
    const key = this.counts.has(name) || this.counts.size < MAX_NAMES ? name : '(other)';
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  top(n: number): Array<[string, number]> {
    return [...this.counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, n);
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.top(MAX_NAMES + 1));
  }
}

export interface Example {
  readonly request_id: string;
  readonly time: string;
  readonly policy?: string;
  readonly method?: string;
  readonly path?: string;
  readonly route?: string;
  readonly subject?: string;
  readonly client?: string;
  readonly peer?: string;
  readonly was: Pick<DecisionRecord, 'decision' | 'reason' | 'missing'>;
  readonly now?: Pick<DecisionRecord, 'decision' | 'reason' | 'missing'> & { readonly detail: string };
  readonly why?: string;
}

class Group {
  count = 0;
  /** Requests the records stand for: each weighs 1/sampled_at. */
  weighted = 0;
  readonly byRoute = new Tally();
  readonly byCaller = new Tally();
  readonly byReason = new Tally();
  readonly examples: Example[] = [];
  constructor(private readonly maxExamples: number) {}

  add(record: DecisionRecord, reason: string, route: string, now?: Decision, why?: string): void {
    this.count++;
    this.weighted += 1 / record.sampled_at;
    this.byRoute.add(route);
    this.byCaller.add(callerOf(record));
    this.byReason.add(reason);
    if (this.examples.length < this.maxExamples) this.examples.push(exampleOf(record, now, why));
  }

  toJSON() {
    return {
      count: this.count,
      weighted: Math.round(this.weighted),
      by_route: this.byRoute,
      by_caller: this.byCaller,
      by_reason: this.byReason,
      examples: this.examples,
    };
  }
}

/** Who the record is about: the token's subject (and client), else the peer. */
function callerOf(record: DecisionRecord): string {
  const token = record.token !== undefined && 'subject' in record.token ? record.token : undefined;
  if (token) return token.client === undefined ? token.subject : `${token.subject} (${token.client})`;
  if (typeof record.peer === 'string') return record.peer;
  return '(unknown caller)';
}

const comparable = (missing: unknown) => JSON.stringify(sortedKeys(missing ?? null));
function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value) || value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortedKeys((value as Record<string, unknown>)[key])]),
  );
}

/** How the candidate's decision differs from the recorded one; undefined when it does not. */
export function changeOf(record: DecisionRecord, now: Decision): ReplayChange | undefined {
  const wasAllowed = record.reason === 'allowed';
  const nowAllowed = now.reason === 'allowed';
  if (wasAllowed && !nowAllowed) return 'allow-to-deny';
  if (!wasAllowed && nowAllowed) return 'deny-to-allow';
  if (record.reason !== now.reason || comparable(record.missing) !== comparable(now.missing)) return 'reason';
  return record.decision === decisionLabel(now) ? undefined : 'enforcement';
}

export class ReplayReport {
  lines = 0;
  records = 0;
  unchanged = 0;
  seconds = 0;
  readonly changes: Record<ReplayChange, Group>;
  readonly cannot: Group;
  readonly notRecords: Record<LineProblem, { count: number; examples: string[] }> = {
    unparsable: { count: 0, examples: [] },
    foreign: { count: 0, examples: [] },
    unknown_version: { count: 0, examples: [] },
    invalid: { count: 0, examples: [] },
  };
  /** The policies the records were decided under (name and revision). */
  readonly recordedUnder = new Tally();

  constructor(private readonly maxExamples = 3) {
    this.changes = Object.fromEntries(REPLAY_CHANGES.map((kind) => [kind, new Group(maxExamples)])) as Record<
      ReplayChange,
      Group
    >;
    this.cannot = new Group(maxExamples);
  }

  /** A line that is not a record this scopegate reads: where (FILE:LINE) and why. */
  notRecord(problem: LineProblem, where: string, detail: string): void {
    const tally = this.notRecords[problem];
    tally.count++;
    if (tally.examples.length < this.maxExamples) tally.examples.push(`${where}: ${detail}`);
  }

  add(record: DecisionRecord, replayed: Replayed): void {
    this.records++;
    this.recordedUnder.add(
      record.policy === undefined ? '(no policy)' : `${record.policy} ${record.revision}`,
    );
    if (!replayed.ok) {
      this.cannot.add(record, replayed.why, record.route ?? '(no route)', undefined, replayed.why);
      return;
    }
    const now = replayed.decision;
    const change = changeOf(record, now);
    if (change === undefined) {
      this.unchanged++;
      return;
    }
    const route = now.route ?? record.route ?? '(no route)';
    this.changes[change].add(record, `${record.reason} → ${now.reason}`, route, now);
  }

  /** Whether any of these kinds happened (`--fail-on`). */
  found(kinds: readonly FailOn[]): boolean {
    return kinds.some((kind) => {
      if (kind === 'cannot-replay') return this.cannot.count > 0;
      if (kind === 'not-records') return Object.values(this.notRecords).some((t) => t.count > 0);
      return this.changes[kind].count > 0;
    });
  }

  toJSON() {
    return {
      lines: this.lines,
      records: this.records,
      unchanged: this.unchanged,
      seconds: Number(this.seconds.toFixed(3)),
      records_per_second: this.recordsPerSecond(),
      recorded_under: this.recordedUnder,
      changes: this.changes,
      cannot_replay: this.cannot,
      not_records: this.notRecords,
    };
  }

  private recordsPerSecond(): number {
    return this.seconds > 0 ? Math.round(this.lines / this.seconds) : 0;
  }

  /** For people: the counts, then each kind of change by route, caller and reason, with examples. */
  render(candidate: string): string {
    const n = (x: number) => x.toLocaleString('en-US');
    const notRecords = Object.values(this.notRecords).reduce((sum, t) => sum + t.count, 0);
    const out = [
      `replayed ${n(this.records)} records (${n(this.lines)} lines) against ${candidate} in ${this.seconds.toFixed(2)} s (${n(this.recordsPerSecond())} lines/s)`,
      `  ${'unchanged'.padEnd(18)} ${n(this.unchanged)}`,
      ...REPLAY_CHANGES.map((kind) => {
        const group = this.changes[kind];
        return `  ${CHANGE_TITLES[kind].padEnd(18)} ${n(group.count)}${group.count > 0 ? `  (≈ ${n(Math.round(group.weighted))} requests)` : ''}`;
      }),
      `  ${'cannot replay'.padEnd(18)} ${n(this.cannot.count)}`,
      `  ${'not records'.padEnd(18)} ${n(notRecords)}${
        notRecords > 0
          ? `  (${Object.entries(this.notRecords)
              .map(([kind, t]) => `${kind.replace('_', ' ')} ${n(t.count)}`)
              .join(', ')})`
          : ''
      }`,
    ];
    const section = (title: string, group: Group, reasonTitle: string) => {
      if (group.count === 0) return;
      const table = (label: string, tally: Tally) =>
        `  ${label.padEnd(10)} ${tally
          .top(5)
          .map(([name, count]) => `${name} ${n(count)}`)
          .join(', ')}`;
      out.push(
        '',
        `${title}: ${n(group.count)} records (≈ ${n(Math.round(group.weighted))} requests)`,
        table('by route', group.byRoute),
        table('by caller', group.byCaller),
        table(reasonTitle, group.byReason),
        '  examples',
        ...group.examples.map((e) => `    ${describe(e)}`),
      );
    };
    for (const kind of REPLAY_CHANGES) section(CHANGE_TITLES[kind], this.changes[kind], 'by reason');
    section('cannot replay', this.cannot, 'why');
    for (const [kind, tally] of Object.entries(this.notRecords)) {
      if (tally.count > 0)
        out.push(
          '',
          `${kind.replace('_', ' ')}: ${n(tally.count)} lines`,
          ...tally.examples.map((e) => `    ${e}`),
        );
    }
    return out.join('\n');
  }
}

function exampleOf(record: DecisionRecord, now?: Decision, why?: string): Example {
  const token = record.token !== undefined && 'subject' in record.token ? record.token : undefined;
  const route = now?.route ?? record.route;
  return {
    request_id: record.request_id,
    time: record.time,
    ...(record.policy !== undefined && { policy: record.policy }),
    ...(record.method !== undefined && { method: record.method, path: record.path! }),
    ...(route !== undefined && { route }),
    ...(token && { subject: token.subject, ...(token.client !== undefined && { client: token.client }) }),
    ...(typeof record.peer === 'string' && { peer: record.peer }),
    was: {
      decision: record.decision,
      reason: record.reason,
      ...(record.missing !== undefined && { missing: record.missing }),
    },
    ...(now && {
      now: {
        decision: decisionLabel(now),
        reason: now.reason,
        ...(now.missing !== undefined && { missing: now.missing }),
        detail: now.detail,
      },
    }),
    ...(why !== undefined && { why }),
  };
}

function describe(e: Example): string {
  const who = [e.subject && `${e.subject}${e.client ? ` (${e.client})` : ''}`, e.peer]
    .filter(Boolean)
    .join(' via ');
  const request = e.method ? `${e.method} ${e.path}` : '(unreadable request)';
  const now = e.now ? `${e.now.decision} ${e.now.reason}: ${e.now.detail}` : `cannot replay: ${e.why}`;
  return `${e.time} ${e.request_id} ${request}${e.route ? ` [${e.route}]` : ''}${who ? ` ${who}` : ''}: ${e.was.decision} ${e.was.reason} → ${now}`;
}
