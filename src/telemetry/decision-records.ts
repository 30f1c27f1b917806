// The decision-record writer (`serve --decision-log PATH|stdout`): every deny, and a sample of allows, as one
// JSON line each (record/types.ts), to a file that rotates by size or to stdout. Recording never changes or
// delays a decision: a Check only appends a line to a bounded in-memory queue; one writer drains it in the
// background. Over the bound, records are dropped and counted; a failing write (a full disk, a file gone)
// is counted and logged at most once a minute, and writing is retried a second later. Never a deny, never
// a throw into the Check path.
import { write as fdWrite } from 'node:fs';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { DecisionRecord } from '../record/types.js';
import type { DecisionLabel } from '../vocabulary/index.js';

export type RecordResult = 'written' | 'dropped' | 'failed';

export interface DecisionRecordsOptions {
  /** A file path, or `stdout`. */
  readonly destination: string;
  /** The share of allows recorded, 0..1 (denies: all of them). */
  readonly allowRate: number;
  /** Rotate the file when it would grow past this many bytes (0: never). */
  readonly maxFileBytes: number;
  /** Rotated files kept beside the current one (PATH.1 is the newest). */
  readonly keepFiles: number;
  /** Records waiting to be written, in bytes, before new ones are dropped. Default 8 MiB. */
  readonly maxPendingBytes?: number;
  /** How long after a failed write the next is tried. Default 1 s. */
  readonly retryMs?: number;
  readonly log: Logger;
  /** Told how many records were written, dropped or failed (scopegate_decision_records_total). */
  readonly count?: (result: RecordResult, records: number) => void;
  /** Random numbers in [0, 1) for sampling allows. Default Math.random. */
  readonly random?: () => number;
}

export const DEFAULT_MAX_PENDING_BYTES = 8 * 2 ** 20;
/** A failure is logged at once, then at most this often while failures go on. */
const FAILURE_LOG_INTERVAL_MS = 60_000;
/** Lines written to stdout in one write at most: a pipe keeps a write this small whole among the logs'. */
const STDOUT_CHUNK_BYTES = 4096;

/** Where the lines go: a file that can rotate, or stdout. */
interface Target {
  /** Bytes in the current file (0 for stdout). */
  size: number;
  write(data: Buffer): Promise<void>;
  rotate?(): Promise<void>;
  close(): Promise<void>;
}

export class DecisionRecords {
  private pending: string[] = [];
  private pendingBytes = 0;
  private draining: Promise<void> | undefined;
  private target: Target | undefined;
  private closed = false;
  private readonly maxPendingBytes: number;
  private readonly random: () => number;
  private lastFailureLog = -Infinity;
  private failedSinceLog = 0;

  constructor(private readonly options: DecisionRecordsOptions) {
    this.maxPendingBytes = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    this.random = options.random ?? Math.random;
  }

  /** The rate a decision of this label is recorded at, or undefined when this one is not recorded. */
  sample(label: DecisionLabel): number | undefined {
    if (label !== 'allow') return 1;
    const rate = this.options.allowRate;
    return rate > 0 && (rate >= 1 || this.random() < rate) ? rate : undefined;
  }

  /** Queues one record; never throws, never waits. */
  write(record: DecisionRecord): void {
    if (this.closed) return;
    const line = `${JSON.stringify(record)}\n`;
    // UTF-16 length bounds the bytes closely enough for a memory bound (at most 3 bytes per unit).
    if (this.pendingBytes + line.length > this.maxPendingBytes) {
      this.options.count?.('dropped', 1);
      return;
    }
    this.pending.push(line);
    this.pendingBytes += line.length;
    this.draining ??= this.drain();
  }

  /** A record could not even be built (a bug): counted as failed, like a failed write. */
  failed(err: unknown): void {
    this.options.count?.('failed', 1);
    this.noteFailure(err, 1);
  }

  /** Writes what is queued, then closes the file. */
  async close(): Promise<void> {
    this.closed = true;
    await this.draining;
    await this.target?.close().catch(() => {});
    this.target = undefined;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const lines = this.takeChunk();
        const data = Buffer.from(lines.join(''));
        try {
          this.target ??= await this.openTarget();
          const { maxFileBytes } = this.options;
          if (
            this.target.rotate &&
            maxFileBytes > 0 &&
            this.target.size > 0 &&
            this.target.size + data.length > maxFileBytes
          ) {
            await this.target.rotate();
          }
          await this.target.write(data);
          this.options.count?.('written', lines.length);
        } catch (err) {
          this.options.count?.('failed', lines.length);
          this.noteFailure(err, lines.length);
          // Start afresh later: the file may have gone, the disk may have room again.
          await this.target?.close().catch(() => {});
          this.target = undefined;
          if (!this.closed)
            await new Promise((resolve) => setTimeout(resolve, this.options.retryMs ?? 1000).unref());
        }
      }
    } finally {
      this.draining = undefined;
    }
  }

  /** The queued lines, up to one stdout-sized chunk for stdout, all of them for a file. */
  private takeChunk(): string[] {
    if (this.options.destination !== 'stdout') {
      const all = this.pending;
      this.pending = [];
      this.pendingBytes = 0;
      return all;
    }
    let bytes = 0;
    let n = 0;
    while (n < this.pending.length && (n === 0 || bytes + this.pending[n]!.length <= STDOUT_CHUNK_BYTES)) {
      bytes += this.pending[n]!.length;
      n++;
    }
    const taken = this.pending.splice(0, n);
    this.pendingBytes -= bytes;
    return taken;
  }

  private noteFailure(err: unknown, records: number): void {
    this.failedSinceLog += records;
    const now = Date.now();
    if (now - this.lastFailureLog < FAILURE_LOG_INTERVAL_MS) return;
    this.lastFailureLog = now;
    const code = (err as { code?: string })?.code;
    this.options.log.warn(
      {
        decision_log: this.options.destination,
        error: code ?? (err as Error)?.message,
        failed_records: this.failedSinceLog,
      },
      'decision records could not be written (decisions go on; the records are lost)',
    );
    this.failedSinceLog = 0;
  }

  private openTarget(): Promise<Target> {
    const { destination, keepFiles } = this.options;
    return destination === 'stdout' ? Promise.resolve(stdoutTarget()) : openFile(destination, keepFiles);
  }
}

function stdoutTarget(): Target {
  return {
    size: 0,
    write: (data) => writeFd(1, data),
    close: async () => {},
  };
}

/** All of `data` to a file descriptor, waiting out a full pipe (EAGAIN) rather than blocking the loop. */
function writeFd(fd: number, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    let offset = 0;
    const next = () =>
      fdWrite(fd, data, offset, data.length - offset, null, (err, written) => {
        if (err) {
          if (err.code === 'EAGAIN') setTimeout(next, 10);
          else reject(err);
          return;
        }
        offset += written;
        if (offset < data.length) next();
        else resolve();
      });
    next();
  });
}

async function openFile(path: string, keep: number): Promise<Target> {
  let handle: FileHandle = await open(path, 'a');
  const target: Target = {
    size: (await handle.stat()).size,
    async write(data) {
      let offset = 0;
      while (offset < data.length) {
        const { bytesWritten } = await handle.write(data, offset);
        offset += bytesWritten;
      }
      target.size += data.length;
    },
    async rotate() {
      // PATH.(keep-1) → PATH.keep … PATH → PATH.1; the oldest beyond `keep` goes.
      await handle.close();
      await unlink(`${path}.${keep}`).catch(() => {});
      for (let i = keep - 1; i >= 1; i--) await rename(`${path}.${i}`, `${path}.${i + 1}`).catch(() => {});
      if (keep >= 1) await rename(path, `${path}.1`);
      else await unlink(path);
      handle = await open(path, 'a');
      target.size = 0;
    },
    close: () => handle.close(),
  };
  return target;
}

/** `PATH` for one process, `PATH.<worker>` for a worker of `serve --workers N`; stdout is stdout. */
export function recordsPathFor(destination: string, worker: number | undefined): string {
  return destination === 'stdout' || worker === undefined ? destination : `${destination}.${worker}`;
}
