// Turns policy text (or a policy file) into a CompiledPolicy, or into every problem found, each located
// as `FILE:LINE:COL: field: message`. YAML is read with line positions kept, duplicate keys refused and
// alias expansion bounded, so a hostile or mistaken file can neither be misread nor blow up memory.
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { inFileOrder } from '../config/problems.js';
import { readTextFile } from '../config/text-file.js';
import { aliasExpansionProblem, parseYaml, positionAt } from '../config/yaml.js';
import { compilePolicy } from './compile.js';
import type { ClaimSite, CompiledPolicy, PolicyDocument, PolicyProblem } from './types.js';
import { validatePolicy } from './validate.js';

/** Policy files larger than this are refused before parsing. */
export const MAX_POLICY_BYTES = 1024 * 1024;

export interface ParseOptions {
  /** Directory a relative `jwks.file` is resolved against; default: the policy file's directory. */
  readonly baseDir?: string;
  /** Revision to report instead of the content hash (e.g. one the caller already tracks). */
  readonly sourceRevision?: string;
}

export type PolicyResult =
  | { readonly ok: true; readonly policy: CompiledPolicy }
  | { readonly ok: false; readonly problems: PolicyProblem[] };

export type DocumentResult =
  | {
      readonly ok: true;
      readonly document: PolicyDocument;
      /** Where the name and each `match` claim are written. */
      readonly sites: Record<string, ClaimSite>;
    }
  | { readonly ok: false; readonly problems: PolicyProblem[] };

/** Parses, validates and compiles policy text; `file` names it in problems and resolves `jwks.file`. */
export function parsePolicy(text: string, file: string, opts: ParseOptions = {}): PolicyResult {
  const read = readPolicyDocument(text, file);
  return read.ok ? { ok: true, policy: compileDocument(read, text, file, opts) } : read;
}

function compileDocument(
  { document, sites }: { document: PolicyDocument; sites: Record<string, ClaimSite> },
  text: string,
  file: string,
  opts: ParseOptions,
) {
  // A copy first: the parser's strings are slices of the file's text, so a compiled policy built on them
  // would keep every file's whole text alive (~10 KiB a policy, 5 MiB for a set of 500).
  return compilePolicy(structuredClone(document), {
    text,
    source: file,
    sites,
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

  // Duplicate keys are found by the validator, which reads every map of a policy it can accept (and says
  // which field they are in): yaml's own check compares each key with every earlier one, an event-loop
  // stall on every reload for a policy with many subjects.
  const { doc, lineCounter, errors } = parseYaml(text, { uniqueKeys: false });
  const at = (offset: number) => ({ ...positionAt(lineCounter, file, offset), field: '' });
  const yamlProblems = errors.map((e) => ({
    code: e.code,
    offset: e.offset,
    problem: { ...at(e.offset), message: `invalid YAML: ${yamlMessage(e.code, e.message)}` },
  }));
  // Duplicate keys leave the structure intact, so validation can still run and report the rest.
  if (yamlProblems.some((p) => p.code !== 'DUPLICATE_KEY')) {
    return { ok: false, problems: inFileOrder(yamlProblems.map((p) => p.problem)) };
  }

  // Expanding aliases through yaml's own bounded resolver first means the validator's walk over the same
  // aliases is bounded too.
  const aliases = aliasExpansionProblem(doc);
  if (aliases) {
    return { ok: false, problems: [{ ...at(aliases.offset), message: `invalid YAML: ${aliases.message}` }] };
  }

  const validated = validatePolicy(doc, lineCounter, file);
  const problems = [
    ...validated.problems,
    ...yamlProblems.filter((p) => !validated.duplicateKeyOffsets.has(p.offset)).map((p) => p.problem),
  ];
  if (problems.length > 0 || !validated.document) return { ok: false, problems: inFileOrder(problems) };
  return { ok: true, document: validated.document, sites: validated.sites };
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
 * loadPolicyFile for a server that is answering checks meanwhile: a large policy's YAML and validation (well
 * over a second for 10,000 routes and subjects) run on a worker thread, with its own heap limit, so the
 * event loop keeps answering; only the compile step (a few per cent of it) runs here. Small policies, and
 * code running from TypeScript sources (no compiled worker next to it), are parsed in place.
 */
export async function loadPolicyFileOffThread(file: string, opts: ParseOptions = {}): Promise<PolicyResult> {
  const read = await readPolicyText(file);
  return read.ok ? parsePolicyOffThread(read.text, file, opts) : read;
}

/** parsePolicy, on a worker thread when the text is large (see loadPolicyFileOffThread). */
export async function parsePolicyOffThread(
  text: string,
  file: string,
  opts: ParseOptions = {},
): Promise<PolicyResult> {
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
  return parsed.ok ? { ok: true, policy: compileDocument(parsed, text, file, opts) } : parsed;
}

export type TextResult =
  | { readonly ok: true; readonly text: string }
  | { readonly ok: false; readonly problems: PolicyProblem[] };

/** A policy file's text (at most 1 MiB, strict UTF-8), or why it cannot be read, as a problem. */
export async function readPolicyText(file: string): Promise<TextResult> {
  const read = await readTextFile(file, MAX_POLICY_BYTES);
  if (read.ok) return read;
  const message = ((): string => {
    switch (read.problem) {
      case 'too_large':
        return read.bytes !== undefined
          ? `the policy is ${read.bytes} bytes; the limit is ${MAX_POLICY_BYTES} bytes (1 MiB)`
          : `the policy is larger than the limit of ${MAX_POLICY_BYTES} bytes (1 MiB)`;
      case 'unreadable':
        return `cannot read the policy file (${read.code})`;
      case 'not_utf8':
        return 'the policy file is not valid UTF-8';
    }
  })();
  return { ok: false, problems: [{ file, line: 1, col: 1, field: '', message }] };
}

// yaml's messages are good except where they speak to a programmer using the library.
function yamlMessage(code: string, message: string): string {
  if (code === 'MULTIPLE_DOCS') return 'a policy file holds one YAML document; remove the "---" separator';
  return message;
}
