// The live policy source: one policy file (`--policy FILE`, which owns every request) or a directory of them
// (`--policy DIR`, a policy set). It loads them, watches for changes (editors that replace a file, Kubernetes
// ConfigMaps that swap a `..data` symlink, plain rewrites, files added and removed, SIGHUP) and swaps in each
// file's new valid revision on its own, with one assignment of the set, so a Check that took the old set
// finishes on it. A file that cannot be served (invalid YAML, schema error, half-written, unreadable, a claim
// another file owns) never replaces its last good revision; it is reported once, and the others keep
// changing. Changes are applied in rounds, one at a time: a round lists the directory, reads what changed
// (and what is not serving its latest content), decides what may be served together (ownership.ts) and
// swaps.
import { type FSWatcher, watch } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { formatProblem } from '../config/problems.js';
import { errorCode } from '../config/text-file.js';
import { delay, fileSignature, PolicyFile } from './file.js';
import { admit, type Contender } from './ownership.js';
import { PolicySet } from './set.js';
import type { CompiledPolicy, PolicyProblem } from './types.js';

/** Quiet time after the last file event before reading: a burst of events (write, rename, chmod) is one reload. */
export const DEFAULT_DEBOUNCE_MS = 100;
/** A file that keeps changing is still read this long after its first event, so a change lands within 1 s. */
export const MAX_DEBOUNCE_MS = 500;
/** Safety net for missed events (inotify misses some swaps; network filesystems have none): stat this often. */
export const DEFAULT_POLL_MS = 2000;
/** Policy files one directory may hold: metric series and memory grow with them. Beyond it: not read. */
export const MAX_POLICY_FILES = 1000;

/** The name kubelet's atomic writer swaps, in the mounted directory, to publish a new ConfigMap version. */
const CONFIGMAP_DATA_LINK = '..data';
const POLICY_FILE = /\.ya?ml$/;

/** What the source reports after start-up; wire metrics and logs here. Each is said once per change of outcome. */
export interface PolicySourceEvents {
  /** A file's new revision is served (`from` undefined: the file's first). */
  swapped?(from: CompiledPolicy | undefined, to: CompiledPolicy): void;
  /** A file changed into something that cannot be served; `serving` (its last good revision) keeps serving. */
  rejected?(file: string, problems: readonly PolicyProblem[], serving: CompiledPolicy | undefined): void;
  /** A file went back to the revision being served after having been rejected: nothing to swap. */
  restored?(serving: CompiledPolicy): void;
  /** A file left the directory: its policy owns nothing now. */
  removed?(policy: CompiledPolicy): void;
  /** Watching the directory failed; changes are still found by polling. Says why, without file content. */
  watchFailed?(why: string): void;
}

export interface PolicySourceOptions<T> {
  /** A policy file, or a directory of them. */
  readonly path: string;
  /**
   * Turns a compiled revision into what is served (start its key stores, build its authenticator). Runs off
   * the hot path, before the swap; a revision whose preparation throws is rejected like a broken file.
   */
  readonly prepare: (policy: CompiledPolicy) => Promise<T>;
  /** After a round changed what is served: every policy served now (to retire what none of them uses). */
  readonly settled?: (serving: readonly CompiledPolicy[]) => void;
  readonly events?: PolicySourceEvents;
  readonly debounceMs?: number;
  readonly pollMs?: number;
  /** Use directory change events (default true); without them, polling alone finds changes. */
  readonly fileEvents?: boolean;
}

/** What one reload round did. */
export interface ReloadOutcome {
  readonly swapped: ReadonlyArray<{ readonly file: string; readonly from?: string; readonly to: string }>;
  /** Files whose content cannot be served now (reported once, but listed in every round they stay so). */
  readonly rejected: ReadonlyArray<{ readonly file: string; readonly problems: readonly PolicyProblem[] }>;
  /** Files that left the directory. */
  readonly removed: readonly string[];
  /** The source was closed: nothing was read. */
  readonly closed?: true;
}

export type OpenResult<T> =
  | { readonly ok: true; readonly source: PolicySource<T>; readonly loaded: ReloadOutcome }
  | { readonly ok: false; readonly problems: readonly PolicyProblem[] };

/**
 * Loads and prepares every file. A single file that cannot be served, or a directory where none can, is
 * refused (nothing is watched); a directory where some files cannot be served opens, not ready until they
 * can (`readiness`).
 */
export async function openPolicySource<T>(options: PolicySourceOptions<T>): Promise<OpenResult<T>> {
  const single = !(await isDirectory(options.path));
  const source = new PolicySource(options, single);
  const loaded = await source.start();
  const problems = loaded.rejected.flatMap((r) => r.problems);
  if (source.policies().length === 0) {
    await source.close();
    return {
      ok: false,
      problems:
        problems.length > 0
          ? problems
          : [
              {
                file: options.path,
                line: 1,
                col: 1,
                field: '',
                message: 'the directory holds no policy files (*.yaml)',
              },
            ],
    };
  }
  return { ok: true, source, loaded };
}

/** A policy file or directory read once, for `validate`, `explain` and `test`: what would be served, and why not. */
export interface LoadedSet {
  readonly set: PolicySet<CompiledPolicy>;
  /** The policies that would be served, in file-name order. */
  readonly policies: readonly CompiledPolicy[];
  /** Every problem found, cross-file ones included; empty when every file would be served. */
  readonly problems: readonly PolicyProblem[];
}

export async function loadPolicySet(path: string): Promise<LoadedSet> {
  const opened = await openPolicySource({ path, prepare: async (policy) => policy });
  if (!opened.ok) return { set: new PolicySet([]), policies: [], problems: opened.problems };
  await opened.source.close();
  return {
    set: opened.source.current(),
    policies: opened.source.policies(),
    problems: opened.loaded.rejected.flatMap((r) => r.problems),
  };
}

export class PolicySource<T> {
  private readonly files = new Map<string, PolicyFile<T>>();
  private set: PolicySet<T> = new PolicySet<T>([]);
  /** Files present at start-up that have not been served yet: until none is left, not ready. */
  private readonly pending = new Set<string>();
  /** What is wrong with the directory itself (unlistable, too many files): said once. */
  private listingProblem: string | undefined;
  /** The last round queued (settled or not): the next one starts after it. */
  private tail: Promise<unknown> = Promise.resolve();
  /** A round queued but not yet started: later requests join it, adding the files they force. */
  private waiting: { readonly run: Promise<ReloadOutcome>; force: Set<string> | 'all' } | undefined;
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private debounce: NodeJS.Timeout | undefined;
  private debounced: Set<string> | 'all' = new Set();
  private firstEventAt = 0;
  private lastListing = '';
  private closed = false;
  private readonly debounceMs: number;
  private readonly pollMs: number;
  /** The directory watched: the file's own, or the policy directory. */
  private readonly dir: string;

  /** Use `openPolicySource`. */
  constructor(
    private readonly options: PolicySourceOptions<T>,
    /** `--policy FILE`: that file is the set, owns every request, and is never "removed". */
    private readonly single: boolean,
  ) {
    this.debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    this.dir = single ? dirname(options.path) : options.path;
  }

  /** What is served now: the set a Check chooses its policy from. A Check reads this once, at its start. */
  current(): PolicySet<T> {
    return this.set;
  }

  /** Every policy served now, in file-name order. */
  policies(): CompiledPolicy[] {
    return this.servedFiles().map((f) => f.served!.policy);
  }

  /**
   * Why the set is not ready (`problems`: files present at start-up that have never loaded), and what is
   * worth saying although it is (`notes`: files refused later, own nothing, or serve a last good revision).
   */
  readiness(): { problems: string[]; notes: string[] } {
    const problems: string[] = [];
    const notes: string[] = [];
    for (const f of this.files.values()) {
      const why = f.problems?.[0] && formatProblem(f.problems[0]);
      if (this.pending.has(f.path))
        problems.push(`policy file ${f.path} is not loaded: ${why ?? 'not read yet'}`);
      else if (f.served === undefined)
        notes.push(`policy file ${f.path} owns nothing: ${why ?? 'not read yet'}`);
      else if (why !== undefined) {
        notes.push(
          `policy file ${f.path} keeps revision ${f.served.policy.revision}; its change was rejected: ${why}`,
        );
      }
    }
    if (this.listingProblem !== undefined) notes.push(`${this.dir}: ${this.listingProblem}`);
    return { problems, notes };
  }

  /** The first round: every file, no events (the caller reports what `openPolicySource` returns). */
  async start(): Promise<ReloadOutcome> {
    const outcome = await this.round('all', false);
    for (const { file } of outcome.rejected) this.pending.add(file);
    return outcome;
  }

  /**
   * Re-reads every file now (SIGHUP). Rounds run one at a time, in order; requests made while one runs share
   * the single round queued behind it (which starts after all of them), so an older read can never win over
   * a newer one and a burst of SIGHUPs is one more round, not a pile.
   */
  reload(): Promise<ReloadOutcome> {
    return this.queue('all');
  }

  /** Starts watching the directory and polling the files. Idempotent. */
  watch(): void {
    if (this.closed || this.poller !== undefined) return;
    this.startWatcher();
    this.poller = setInterval(() => void this.poll(), this.pollMs);
    this.poller.unref();
  }

  /** Stops watching and waits for a round in progress; later reloads resolve `closed`. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.debounce);
    clearInterval(this.poller);
    this.watcher?.close();
    this.watcher = undefined;
    await this.tail;
  }

  private queue(force: Set<string> | 'all'): Promise<ReloadOutcome> {
    if (this.waiting !== undefined) {
      const joined = this.waiting;
      joined.force = force === 'all' || joined.force === 'all' ? 'all' : new Set([...joined.force, ...force]);
      return joined.run;
    }
    const waiting: { run: Promise<ReloadOutcome>; force: Set<string> | 'all' } = {
      force,
      run: this.tail.then(() => {
        this.waiting = undefined;
        return this.round(waiting.force, true);
      }),
    };
    this.waiting = waiting;
    this.tail = waiting.run.catch(() => undefined);
    return waiting.run;
  }

  private servedFiles(): PolicyFile<T>[] {
    return [...this.files.values()].filter((f) => f.served !== undefined);
  }

  /** One round: list, read what changed, admit what may be served together, swap. Never throws. */
  private async round(force: Set<string> | 'all', report: boolean): Promise<ReloadOutcome> {
    const swapped: Array<{ file: string; from?: string; to: string }> = [];
    const rejected: Array<{ file: string; problems: readonly PolicyProblem[] }> = [];
    if (this.closed) return { swapped, rejected, removed: [], closed: true };
    const events = report ? this.options.events : undefined;
    const refuse = (f: PolicyFile<T>, problems: readonly PolicyProblem[]) => {
      rejected.push({ file: f.path, problems });
      f.problems = problems;
      // Problems, not bytes, identify a rejection: the same broken file seen again (a poll, a second SIGHUP,
      // a deleted file staying deleted) is reported once, not every round.
      const fingerprint = `rejected\n${problems.map(formatProblem).join('\n')}`;
      if (fingerprint === f.lastSeen) return;
      f.lastSeen = fingerprint;
      events?.rejected?.(f.path, problems, f.served?.policy);
    };

    const listed = await this.list(events);
    this.lastListing = listed.join('\n');
    const { files: removed, served: gone } = await this.removeMissing(listed);
    /** Said once the set has changed, so what is reported is what Checks see. */
    const announcements: Array<() => void> = gone.map((policy) => () => events?.removed?.(policy));
    for (const path of listed) {
      if (!this.files.has(path)) this.files.set(path, new PolicyFile<T>(path, this.debounceMs));
    }

    // What to read: what was forced, what looks changed, and what is not serving its latest content.
    const candidates: Contender[] = [];
    for (const f of this.files.values()) {
      if (this.closed) return { swapped, rejected, removed, closed: true };
      const read = force === 'all' || force.has(f.path) || f.problems !== undefined || f.served === undefined;
      if (!read && !(await f.looksChanged())) continue;
      try {
        const reading = await f.read();
        if (reading.kind === 'rejected') refuse(f, reading.problems);
        else if (reading.kind === 'candidate') candidates.push({ file: f.path, policy: reading.policy });
        else if (f.problems !== undefined && f.served !== undefined) {
          f.problems = undefined;
          f.lastSeen = f.served.policy.revision;
          events?.restored?.(f.served.policy);
        }
      } catch (err) {
        // Whatever went wrong, the last good revision keeps serving: a reload never takes the server down.
        refuse(f, [
          whole(
            f.path,
            `the policy could not be loaded (${err instanceof Error ? err.name : 'unknown error'})`,
          ),
        ]);
      }
    }
    if (this.closed) return { swapped, rejected, removed, closed: true };

    const reading = new Set(candidates.map((c) => c.file));
    const others = this.servedFiles()
      .filter((f) => !reading.has(f.path))
      .map((f) => ({ file: f.path, policy: f.served!.policy }));
    const { admitted, refused } = this.single
      ? { admitted: candidates, refused: new Map() }
      : admit(candidates, others);
    for (const [file, problems] of refused) refuse(this.files.get(file)!, problems);

    for (const { file, policy } of admitted) {
      const f = this.files.get(file)!;
      let value: T;
      try {
        // Key stores for new issuers, the authenticator, …: built before the swap, while the old revision serves.
        value = await this.options.prepare(policy);
      } catch (err) {
        refuse(f, [
          whole(
            file,
            `the policy could not be prepared (${err instanceof Error ? err.name : 'unknown error'})`,
          ),
        ]);
        continue;
      }
      if (this.closed) return { swapped, rejected, removed, closed: true };
      const from = f.served?.policy;
      f.served = { policy, value };
      f.problems = undefined;
      f.lastSeen = policy.revision;
      this.pending.delete(file);
      swapped.push({ file, ...(from && { from: from.revision }), to: policy.revision });
      announcements.push(() => events?.swapped?.(from, policy));
    }

    if (swapped.length > 0 || removed.length > 0) {
      // The swap: one assignment. Checks already running keep the set they read at their start.
      const served = this.servedFiles();
      this.set = new PolicySet(
        served.map((f) => ({ owns: f.served!.policy.owns, value: f.served!.value })),
        this.single,
      );
      this.options.settled?.(served.map((f) => f.served!.policy));
    }
    for (const announce of announcements) {
      // An observer failing (metrics, logs) must not make a swap look like a rejection.
      try {
        announce();
      } catch {
        // Nothing to undo; the new set is serving.
      }
    }
    return { swapped, rejected, removed };
  }

  /**
   * The policy files to serve, in name order: the one file, or the directory's `*.yaml` and `*.yml` (hidden
   * names such as `..data` skipped), at most MAX_POLICY_FILES of them.
   */
  private async list(events?: PolicySourceEvents): Promise<string[]> {
    if (this.single) return [this.options.path];
    let problem: string | undefined;
    let files: string[];
    try {
      const names = (await readdir(this.dir)).filter((n) => !n.startsWith('.') && POLICY_FILE.test(n)).sort();
      files = [];
      for (const name of names) {
        const path = join(this.dir, name);
        // A symlink is followed (a ConfigMap's files are links into `..data`); a directory named x.yaml is not a file.
        const isFile = await stat(path).then(
          (s) => s.isFile(),
          () => this.files.has(path),
        );
        if (isFile) files.push(path);
      }
      if (files.length > MAX_POLICY_FILES) {
        problem = `the policy directory holds ${files.length} policy files; only the first ${MAX_POLICY_FILES} by name are read`;
        files = files.slice(0, MAX_POLICY_FILES);
      }
    } catch (err) {
      // An unlistable directory (unmounted, permissions) changes nothing: every policy keeps serving.
      problem = `cannot list the policy directory (${errorCode(err) ?? 'unknown error'}); serving what was loaded`;
      files = [...this.files.keys()];
    }
    if (problem !== undefined && problem !== this.listingProblem) {
      events?.rejected?.(this.dir, [whole(this.dir, problem)], undefined);
    }
    this.listingProblem = problem;
    return files;
  }

  /**
   * Files no longer listed leave the set, once they stay gone past the debounce time (an editor that deletes
   * and rewrites a file must not make its requests policy_unknown for a moment).
   */
  private async removeMissing(
    listed: readonly string[],
  ): Promise<{ files: string[]; served: CompiledPolicy[] }> {
    // A set, not the list: one round among MAX_POLICY_FILES files must not compare every path with every other.
    const present = new Set(listed);
    let gone = [...this.files.keys()].filter((path) => !present.has(path));
    if (gone.length === 0) return { files: [], served: [] };
    await delay(this.debounceMs);
    const again = new Set(await this.list());
    gone = gone.filter((path) => !again.has(path));
    const served: CompiledPolicy[] = [];
    for (const path of gone) {
      const f = this.files.get(path)!;
      this.files.delete(path);
      this.pending.delete(path);
      if (f.served !== undefined) served.push(f.served.policy);
    }
    return { files: gone, served };
  }

  /** Coalesces file events: read once things have been quiet for debounceMs, and never later than MAX. */
  private schedule(file: string | 'all'): void {
    if (this.closed) return;
    if (file === 'all' || this.debounced === 'all') this.debounced = 'all';
    else this.debounced.add(file);
    const now = Date.now();
    if (this.debounce === undefined) this.firstEventAt = now;
    clearTimeout(this.debounce);
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstEventAt + MAX_DEBOUNCE_MS - now));
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      const force = this.debounced;
      this.debounced = new Set();
      void this.queue(force);
    }, wait);
    this.debounce.unref();
  }

  private startWatcher(): void {
    if (this.options.fileEvents === false || this.closed) return;
    const only = this.single ? basename(this.options.path) : undefined;
    try {
      // The directory, not the files: an editor's rename-over or kubelet's `..data` swap replaces a file, and
      // a watch on the old inode would never fire again. Names are only hints (`null` on some platforms);
      // whether anything changed is decided by the content hash when the file is read.
      const watcher = watch(this.dir, { persistent: false }, (_event, filename) => {
        if (filename === null || filename === CONFIGMAP_DATA_LINK) this.schedule('all');
        else if (only === undefined ? POLICY_FILE.test(filename) : filename === only) {
          this.schedule(join(this.dir, filename));
        }
      });
      watcher.on('error', (err) => {
        watcher.close();
        if (this.watcher === watcher) this.watcher = undefined;
        this.options.events?.watchFailed?.(errorCode(err) ?? 'unknown error');
      });
      this.watcher = watcher;
    } catch (err) {
      this.options.events?.watchFailed?.(errorCode(err) ?? 'unknown error');
    }
  }

  /** Cheap change detection (the listing, and each file's realpath and stat): a difference schedules a round. */
  private async poll(): Promise<void> {
    if (this.polling || this.closed) return;
    this.polling = true;
    try {
      // The directory may have come back (or a failed watch may now work): events again instead of polls.
      if (this.watcher === undefined) this.startWatcher();
      const listed = await this.list(this.options.events);
      const listing = listed.join('\n');
      const changedListing = listing !== this.lastListing;
      this.lastListing = listing;
      if (changedListing) return this.schedule('all');
      for (const path of listed) {
        const f = this.files.get(path);
        if (f !== undefined && (await fileSignature(path)) !== f.signature) this.schedule(path);
      }
    } finally {
      this.polling = false;
    }
  }
}

function whole(file: string, message: string): PolicyProblem {
  return { file, line: 1, col: 1, field: '', message };
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}
