// One policy file of a live source: the revision it serves (its last good one), and reading it again. Reading
// is careful: a writer may be half-way through (truncate, then write), so a file that changed while it was
// being read is read again once it has settled; content equal to the served revision is known by its hash
// alone, without parsing, so re-reading a directory of unchanged files costs little.
import { realpath, stat } from 'node:fs/promises';
import { errorCode } from '../config/text-file.js';
import { policyRevision } from './compile.js';
import { parsePolicyOffThread, readPolicyText } from './load.js';
import type { CompiledPolicy, PolicyProblem } from './types.js';

/** Reads of a file that keeps changing under the reader (a writer half-way through) before judging it. */
const UNSETTLED_ATTEMPTS = 3;

export interface Served<T> {
  readonly policy: CompiledPolicy;
  /** What the source's `prepare` made of it (the server's Snapshot). */
  readonly value: T;
}

/** What reading the file found. */
export type Reading =
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'candidate'; readonly policy: CompiledPolicy }
  | { readonly kind: 'rejected'; readonly problems: readonly PolicyProblem[] };

export class PolicyFile<T> {
  /** The revision served; undefined until the file's first good read (or after a refused one at start-up). */
  served: Served<T> | undefined;
  /** The last outcome reported: a served revision or a rejection fingerprint. Same again → nothing to say. */
  lastSeen = '';
  /** Why its latest content is not served (undefined: it is, or it was never read). */
  problems: readonly PolicyProblem[] | undefined;
  /** Where the file resolved to and its stat, when last read. */
  signature = '';

  constructor(
    readonly path: string,
    private readonly settleMs: number,
  ) {}

  /** Whether the file looks different from when it was last read (cheap: realpath and stat). */
  async looksChanged(): Promise<boolean> {
    return (await fileSignature(this.path)) !== this.signature;
  }

  async read(): Promise<Reading> {
    let text: string | undefined;
    let problems: readonly PolicyProblem[] = [];
    for (let attempt = 1; ; attempt++) {
      const before = await fileSignature(this.path);
      const read = await readPolicyText(this.path);
      const after = await fileSignature(this.path);
      this.signature = after;
      if (read.ok) text = read.text;
      else problems = read.problems;
      if (attempt >= UNSETTLED_ATTEMPTS || after === before) break;
      await delay(this.settleMs);
    }
    if (text === undefined) return { kind: 'rejected', problems };
    const served = this.served?.policy;
    if (served !== undefined && policyRevision(text) === served.revision) return { kind: 'unchanged' };
    const parsed = await parsePolicyOffThread(text, this.path);
    return parsed.ok
      ? { kind: 'candidate', policy: parsed.policy }
      : { kind: 'rejected', problems: parsed.problems };
  }
}

/** Where the file resolves to and its stat, following symlinks; a missing file has a signature too. */
export async function fileSignature(file: string): Promise<string> {
  try {
    const [resolved, info] = await Promise.all([realpath(file), stat(file)]);
    return `${resolved}\n${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
  } catch (err) {
    return `unreadable:${errorCode(err) ?? 'unknown error'}`;
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
