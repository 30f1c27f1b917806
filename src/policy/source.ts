// The live policy source: loads the policy file, watches it for changes (editors that replace the file,
// Kubernetes ConfigMaps that swap a `..data` symlink, plain in-place rewrites, SIGHUP) and swaps in each new
// valid revision with one assignment, so a Check that took the old value finishes on it. A file that cannot
// be served (invalid YAML, schema error, half-written, deleted, unreadable) never replaces the last good
// revision; it is reported once, and the last good revision keeps serving.
import { type FSWatcher, watch } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { formatProblem } from '../config/problems.js';
import { errorCode } from '../config/text-file.js';
import { loadPolicyFileOffThread, type PolicyResult } from './load.js';
import type { CompiledPolicy, PolicyProblem } from './types.js';

/** Quiet time after the last file event before reading: a burst of events (write, rename, chmod) is one reload. */
export const DEFAULT_DEBOUNCE_MS = 100;
/** A file that keeps changing is still read this long after its first event, so a change lands within 1 s. */
export const MAX_DEBOUNCE_MS = 500;
/** Safety net for missed events (inotify misses some swaps; network filesystems have none): stat this often. */
export const DEFAULT_POLL_MS = 2000;
/** Reads of a file that keeps changing under the reader (a writer half-way through) before judging it. */
const UNSETTLED_ATTEMPTS = 3;

/** The name kubelet's atomic writer swaps, in the mounted directory, to publish a new ConfigMap version. */
const CONFIGMAP_DATA_LINK = '..data';

/** What the source reports; wire metrics and logs here. Each is called once per change of outcome. */
export interface PolicySourceEvents {
  /** A new revision is being served; `from` is the one it replaced. */
  swapped?(from: CompiledPolicy, to: CompiledPolicy): void;
  /** The file changed into something that cannot be served; the last good revision keeps serving. */
  rejected?(problems: readonly PolicyProblem[], serving: CompiledPolicy): void;
  /** The file went back to the revision being served after having been rejected: nothing to swap. */
  restored?(serving: CompiledPolicy): void;
  /** Watching the directory failed; changes are still found by polling. Says why, without file content. */
  watchFailed?(why: string): void;
}

export interface PolicySourceOptions<T> {
  readonly file: string;
  /**
   * Turns a compiled revision into what is served (start its key stores, build its authenticator). Runs off
   * the hot path, before the swap; a revision whose preparation throws is rejected like a broken file.
   */
  readonly prepare: (policy: CompiledPolicy) => Promise<T>;
  readonly events?: PolicySourceEvents;
  readonly debounceMs?: number;
  readonly pollMs?: number;
  /** Use directory change events (default true); without them, polling alone finds changes. */
  readonly fileEvents?: boolean;
}

export type ReloadOutcome =
  | { readonly status: 'swapped'; readonly from: string; readonly to: string }
  | { readonly status: 'unchanged'; readonly revision: string }
  | { readonly status: 'rejected'; readonly problems: readonly PolicyProblem[]; readonly revision: string }
  | { readonly status: 'closed' };

export type OpenResult<T> =
  | { readonly ok: true; readonly source: PolicySource<T> }
  | { readonly ok: false; readonly problems: readonly PolicyProblem[] };

/** Loads and prepares the first revision; a file that cannot be served at start-up is refused, not watched. */
export async function openPolicySource<T>(options: PolicySourceOptions<T>): Promise<OpenResult<T>> {
  // Taken before reading, so a change between this read and the first poll is still seen by the poll.
  const signature = await fileSignature(options.file);
  const first = await loadPolicyFileOffThread(options.file);
  if (!first.ok) return { ok: false, problems: first.problems };
  const value = await options.prepare(first.policy);
  return { ok: true, source: new PolicySource(options, { policy: first.policy, value }, signature) };
}

interface Served<T> {
  readonly policy: CompiledPolicy;
  readonly value: T;
}

export class PolicySource<T> {
  private served: Served<T>;
  /** The last outcome reported: the served revision, or a rejection fingerprint. Same again → nothing to say. */
  private lastSeen: string;
  /** The last reload queued (settled or not): the next one starts after it. */
  private tail: Promise<void> = Promise.resolve();
  /** A reload queued but not yet started: later requests join it. */
  private waiting: Promise<ReloadOutcome> | undefined;
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private debounce: NodeJS.Timeout | undefined;
  private firstEventAt = 0;
  private closed = false;
  private readonly debounceMs: number;
  private readonly pollMs: number;

  /** Use `openPolicySource`. */
  constructor(
    private readonly options: PolicySourceOptions<T>,
    first: Served<T>,
    private lastPolled: string,
  ) {
    this.served = first;
    this.lastSeen = first.policy.revision;
    this.debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  }

  /** What is served now. A Check reads this once, at its start. */
  current(): T {
    return this.served.value;
  }

  policy(): CompiledPolicy {
    return this.served.policy;
  }

  /**
   * Re-reads the file and swaps in a new valid revision. Reloads run one at a time, in order; requests made
   * while one runs share the single read queued behind it (which starts after all of them), so an older read
   * can never win over a newer one and a burst of SIGHUPs is one more read, not a pile.
   */
  reload(): Promise<ReloadOutcome> {
    if (this.waiting !== undefined) return this.waiting;
    const run = this.tail.then(() => {
      this.waiting = undefined;
      return this.reloadNow();
    });
    this.waiting = run;
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Starts watching the file's directory and polling the file. Idempotent. */
  watch(): void {
    if (this.closed || this.poller !== undefined) return;
    this.startWatcher();
    this.poller = setInterval(() => void this.poll(), this.pollMs);
    this.poller.unref();
  }

  /** Stops watching and waits for a reload in progress; later reloads resolve `closed`. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.debounce);
    clearInterval(this.poller);
    this.watcher?.close();
    this.watcher = undefined;
    await this.tail;
  }

  private async reloadNow(): Promise<ReloadOutcome> {
    if (this.closed) return { status: 'closed' };
    try {
      return await this.readAndSwap();
    } catch (err) {
      // Whatever went wrong, the last good revision keeps serving: a reload never takes the server down.
      const why = err instanceof Error ? err.name : 'unknown error';
      return this.reject([
        {
          file: this.options.file,
          line: 1,
          col: 1,
          field: '',
          message: `the policy could not be loaded (${why})`,
        },
      ]);
    }
  }

  private async readAndSwap(): Promise<ReloadOutcome> {
    const { file } = this.options;
    let result: PolicyResult;
    // A writer may be half-way through (truncate, then write): if the file changed while it was being read,
    // read it again once it has settled rather than judge a torn copy.
    for (let attempt = 1; ; attempt++) {
      const before = await fileSignature(file);
      result = await loadPolicyFileOffThread(file);
      if (attempt >= UNSETTLED_ATTEMPTS || (await fileSignature(file)) === before) break;
      await delay(this.debounceMs);
    }
    if (this.closed) return { status: 'closed' };

    const serving = this.served.policy;
    if (!result.ok) return this.reject(result.problems);
    const next = result.policy;
    if (next.revision === serving.revision) {
      if (this.lastSeen !== serving.revision) {
        this.lastSeen = serving.revision;
        this.options.events?.restored?.(serving);
      }
      return { status: 'unchanged', revision: serving.revision };
    }

    // Key stores for new issuers, the authenticator, …: built before the swap, while the old revision serves.
    const value = await this.options.prepare(next);
    if (this.closed) return { status: 'closed' };
    // The swap: one assignment. Checks already running keep the Served they read at their start.
    this.served = { policy: next, value };
    this.lastSeen = next.revision;
    // The swap has happened: an observer failing (metrics, logs) must not make it look like a rejection.
    try {
      this.options.events?.swapped?.(serving, next);
    } catch {
      // Nothing to undo; the new revision is serving.
    }
    return { status: 'swapped', from: serving.revision, to: next.revision };
  }

  private reject(problems: readonly PolicyProblem[]): ReloadOutcome {
    const serving = this.served.policy;
    // Problems, not bytes, identify a rejection: the same broken file seen again (a poll, a second SIGHUP, a
    // deleted file staying deleted) is reported once, not every 2 s.
    const fingerprint = `rejected\n${problems.map(formatProblem).join('\n')}`;
    if (fingerprint !== this.lastSeen) {
      this.lastSeen = fingerprint;
      this.options.events?.rejected?.(problems, serving);
    }
    return { status: 'rejected', problems, revision: serving.revision };
  }

  /** Coalesces file events: read once things have been quiet for debounceMs, and never later than MAX. */
  private schedule(): void {
    if (this.closed) return;
    const now = Date.now();
    if (this.debounce === undefined) this.firstEventAt = now;
    clearTimeout(this.debounce);
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstEventAt + MAX_DEBOUNCE_MS - now));
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.reload();
    }, wait);
    this.debounce.unref();
  }

  private startWatcher(): void {
    if (this.options.fileEvents === false || this.closed) return;
    const name = basename(this.options.file);
    try {
      // The directory, not the file: an editor's rename-over or kubelet's `..data` swap replaces the file,
      // and a watch on the old inode would never fire again. Names are only hints (`null` on some
      // platforms); whether anything changed is decided by the content hash when the file is read.
      const watcher = watch(dirname(this.options.file), { persistent: false }, (_event, filename) => {
        if (filename === null || filename === name || filename === CONFIGMAP_DATA_LINK) this.schedule();
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

  /** Cheap change detection (realpath, inode, size, times): a difference schedules a read. */
  private async poll(): Promise<void> {
    if (this.polling || this.closed) return;
    this.polling = true;
    try {
      // The directory may have come back (or a failed watch may now work): events again instead of polls.
      if (this.watcher === undefined) this.startWatcher();
      const signature = await fileSignature(this.options.file);
      if (signature !== this.lastPolled) {
        this.lastPolled = signature;
        this.schedule();
      }
    } finally {
      this.polling = false;
    }
  }
}

/** Where the file resolves to and its stat, following symlinks; a missing file has a signature too. */
async function fileSignature(file: string): Promise<string> {
  try {
    const [resolved, info] = await Promise.all([realpath(file), stat(file)]);
    return `${resolved}\n${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
  } catch (err) {
    return `unreadable:${errorCode(err) ?? 'unknown error'}`;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
