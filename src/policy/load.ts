// Turns policy text (or a policy file) into a CompiledPolicy, or into every problem found, each located
// as `FILE:LINE:COL: field: message`. YAML is read with line positions kept, duplicate keys refused and
// alias expansion bounded, so a hostile or mistaken file can neither be misread nor blow up memory.
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { LineCounter, parseDocument, visit } from 'yaml';
import { compilePolicy } from './compile.js';
import type { CompiledPolicy, PolicyDocument, PolicyProblem } from './types.js';
import { validatePolicy } from './validate.js';

/** Policy files larger than this are refused before parsing. */
export const MAX_POLICY_BYTES = 1024 * 1024;
/** How many times anchored content may be repeated through aliases: plenty for sharing lists, no bombs. */
export const MAX_ALIAS_COUNT = 50;

export interface ParseOptions {
  /** Directory a relative `jwks.file` is resolved against; default: the policy file's directory. */
  readonly baseDir?: string;
  /** Revision to report instead of the content hash (e.g. one the caller already tracks). */
  readonly sourceRevision?: string;
}

export type PolicyResult =
  | { readonly ok: true; readonly policy: CompiledPolicy }
  | { readonly ok: false; readonly problems: PolicyProblem[] };

/** `FILE:LINE:COL: field: message` (the field is left out for problems about the whole file). */
export function formatProblem(p: PolicyProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.field ? `${p.field}: ` : ''}${p.message}`;
}

export type DocumentResult =
  | { readonly ok: true; readonly document: PolicyDocument }
  | { readonly ok: false; readonly problems: PolicyProblem[] };

/** Parses, validates and compiles policy text; `file` names it in problems and resolves `jwks.file`. */
export function parsePolicy(text: string, file: string, opts: ParseOptions = {}): PolicyResult {
  const read = readPolicyDocument(text, file);
  return read.ok ? { ok: true, policy: compileDocument(read.document, text, file, opts) } : read;
}

function compileDocument(document: PolicyDocument, text: string, file: string, opts: ParseOptions) {
  return compilePolicy(document, {
    text,
    source: file,
    baseDir: opts.baseDir ?? dirname(file),
    ...(opts.sourceRevision !== undefined ? { revision: opts.sourceRevision } : {}),
  });
}

/**
 * The expensive half of parsePolicy: YAML with positions, aliases bounded, validation. Its result is plain
 * data, so it can run on a worker thread (loadPolicyFileOffThread).
 */
export function readPolicyDocument(text: string, file: string): DocumentResult {
  const whole = (message: string): DocumentResult => ({
    ok: false,
    problems: [{ file, line: 1, col: 1, field: '', message }],
  });
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_POLICY_BYTES) {
    return whole(`the policy is ${bytes} bytes; the limit is ${MAX_POLICY_BYTES} bytes (1 MiB)`);
  }

  const lineCounter = new LineCounter();
  // Duplicate keys are found by the validator, which reads every map of a policy it can accept (and says
  // which field they are in): yaml's own check compares each key with every earlier one, which took 1.8 s
  // (an event-loop stall on every reload) for a policy with 10,000 subjects.
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false, strict: true });
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(Math.max(offset, 0));
    return { file, line: Math.max(line, 1), col: Math.max(col, 1) };
  };
  // Warnings too (unknown tags, …): a policy we only half understand is a policy we do not load.
  const yamlProblems = [...doc.errors, ...doc.warnings].map((e) => ({
    code: e.code,
    offset: e.pos[0],
    problem: {
      ...at(e.pos[0]),
      field: '',
      message: `invalid YAML: ${yamlMessage(e.code, e.message)}`,
    } satisfies PolicyProblem,
  }));
  // Duplicate keys leave the structure intact, so validation can still run and report the rest.
  if (yamlProblems.some((p) => p.code !== 'DUPLICATE_KEY')) {
    return { ok: false, problems: sortProblems(yamlProblems.map((p) => p.problem)) };
  }

  // Expanding aliases through yaml's own bounded resolver first means the validator's walk over the same
  // aliases is bounded too.
  try {
    doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    let first = 0;
    visit(doc, {
      Alias: (_key, node) => {
        first = node.range?.[0] ?? 0;
        return visit.BREAK;
      },
    });
    const why =
      err instanceof ReferenceError && /excessive alias/i.test(err.message)
        ? `aliases expand too much (more than ${MAX_ALIAS_COUNT} uses of anchored content)`
        : `aliases could not be resolved (${err instanceof Error ? err.message : 'unknown error'})`;
    return { ok: false, problems: [{ ...at(first), field: '', message: `invalid YAML: ${why}` }] };
  }

  const validated = validatePolicy(doc, lineCounter, file);
  const problems = [
    ...validated.problems,
    ...yamlProblems.filter((p) => !validated.duplicateKeyOffsets.has(p.offset)).map((p) => p.problem),
  ];
  if (problems.length > 0 || !validated.document) return { ok: false, problems: sortProblems(problems) };
  return { ok: true, document: validated.document };
}

/** Reads a policy file (at most 1 MiB, UTF-8) and parses it; I/O failures are problems too. */
export async function loadPolicyFile(file: string, opts: ParseOptions = {}): Promise<PolicyResult> {
  const read = await readPolicyText(file);
  return read.ok ? parsePolicy(read.text, file, opts) : read;
}

/** Policies larger than this are parsed on a worker thread by loadPolicyFileOffThread. */
export const OFF_THREAD_BYTES = 64 * 1024;
const PARSE_WORKER = new URL('./parse-worker.js', import.meta.url);

/**
 * loadPolicyFile for a server that is answering checks meanwhile: a large policy's YAML and validation
 * (0.65 s for 10,000 routes and 10,000 subjects) run on a worker thread, with its own heap limit, so the
 * event loop keeps answering; only the compile step (a few per cent of it) runs here. Small policies, and
 * code running from TypeScript sources (no compiled worker next to it), are parsed in place.
 */
export async function loadPolicyFileOffThread(file: string, opts: ParseOptions = {}): Promise<PolicyResult> {
  const read = await readPolicyText(file);
  if (!read.ok) return read;
  const { text } = read;
  if (text.length < OFF_THREAD_BYTES || !existsSync(fileURLToPath(PARSE_WORKER))) {
    return parsePolicy(text, file, opts);
  }
  const parsed = await new Promise<DocumentResult>((resolve) => {
    const worker = new Worker(PARSE_WORKER, {
      workerData: { text, file },
      resourceLimits: { maxOldGenerationSizeMb: 512 },
    });
    const failed = (why: string) =>
      resolve({ ok: false, problems: [{ file, line: 1, col: 1, field: '', message: why }] });
    worker.once('message', (result: DocumentResult) => resolve(result));
    worker.once('error', (err) => failed(`the policy could not be parsed (${err.message})`));
    worker.once('exit', (code) => failed(`the policy parser stopped (exit ${code})`));
  });
  return parsed.ok ? { ok: true, policy: compileDocument(parsed.document, text, file, opts) } : parsed;
}

type TextResult =
  | { readonly ok: true; readonly text: string }
  | { readonly ok: false; readonly problems: PolicyProblem[] };

async function readPolicyText(file: string): Promise<TextResult> {
  const whole = (message: string): TextResult => ({
    ok: false,
    problems: [{ file, line: 1, col: 1, field: '', message }],
  });
  let bytes: Uint8Array;
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      if (size > MAX_POLICY_BYTES) {
        return whole(`the policy is ${size} bytes; the limit is ${MAX_POLICY_BYTES} bytes (1 MiB)`);
      }
      // Read one byte past the cap: the file may have grown since stat.
      const buffer = Buffer.alloc(MAX_POLICY_BYTES + 1);
      let length = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length > MAX_POLICY_BYTES) {
          return whole(`the policy is larger than the limit of ${MAX_POLICY_BYTES} bytes (1 MiB)`);
        }
      }
      bytes = buffer.subarray(0, length);
    } finally {
      await handle.close();
    }
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return whole(`cannot read the policy file (${typeof code === 'string' ? code : 'unknown error'})`);
  }
  let text: string;
  try {
    // Fatal decoding: a stray byte must not silently become U+FFFD inside a permission or scope name.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return whole('the policy file is not valid UTF-8');
  }
  return { ok: true, text };
}

// yaml's messages are good except where they speak to a programmer using the library.
function yamlMessage(code: string, message: string): string {
  if (code === 'MULTIPLE_DOCS') return 'a policy file holds one YAML document; remove the "---" separator';
  return message;
}

function sortProblems(problems: PolicyProblem[]): PolicyProblem[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => a.p.line - b.p.line || a.p.col - b.p.col || a.i - b.i)
    .map(({ p }) => p);
}
