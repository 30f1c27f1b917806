// The support thread's last complaint — "the fix needed a gateway restart" — under fault: 20 policy changes
// while checks run non-stop from several concurrent callers. Good and broken versions are interleaved (WH03
// granted and revoked for svc-inventory-sync; broken YAML, an unknown permission, a truncated copy, a deleted
// file), first rewritten in place, then published the way a Kubernetes ConfigMap is (kubelet swaps a
// `..data` symlink). No check may fail, every answer must match the revision that gave it, a broken version
// must never be served, each must be counted and logged, and the last good version must serve within 1 s.
import { createHash } from 'node:crypto';
import { mkdir, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/telemetry/log.js';
import { examplePolicyText } from '../support/policies.js';
import { type Harness, JSON_BODY, startHarness, transaction } from '../support/scopegate.js';

// The revision a file is served under: the first 12 hex digits of its SHA-256 (README, compile.ts).
const revisionOf = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 12);

const logLines: Array<Record<string, unknown>> = [];
const sink = new Writable({
  write(chunk, _encoding, done) {
    for (const line of String(chunk).split('\n')) {
      if (!line) continue;
      const entry = JSON.parse(line) as Record<string, unknown>;
      // Only the policy lines: the deny log of thousands of checks is not what this test reads.
      if (typeof entry.msg === 'string' && entry.msg.startsWith('policy')) logLines.push(entry);
    }
    done();
  },
});

type Step =
  | { readonly kind: 'valid'; readonly wh03: boolean }
  | { readonly kind: 'broken_yaml' | 'unknown_permission' | 'truncated' | 'deleted' };

// 20 reloads: 11 good, 9 broken, interleaved. The first 10 rewrite the file in place, the rest are
// ConfigMap swaps (a deleted file is an in-place fault only: kubelet never deletes the mounted key).
const IN_PLACE: Step[] = [
  { kind: 'valid', wh03: true },
  { kind: 'broken_yaml' },
  { kind: 'valid', wh03: false },
  { kind: 'unknown_permission' },
  { kind: 'valid', wh03: true },
  { kind: 'truncated' },
  { kind: 'valid', wh03: false },
  { kind: 'deleted' },
  { kind: 'valid', wh03: true },
  { kind: 'broken_yaml' },
];
const CONFIGMAP: Step[] = [
  { kind: 'valid', wh03: false },
  { kind: 'unknown_permission' },
  { kind: 'valid', wh03: true },
  { kind: 'truncated' },
  { kind: 'valid', wh03: false },
  { kind: 'broken_yaml' },
  { kind: 'valid', wh03: true },
  { kind: 'unknown_permission' },
  { kind: 'valid', wh03: false },
  { kind: 'valid', wh03: true },
];

const ORIGINAL_LOCATIONS = 'locations: [WH01, WH02, "EU-*"]';

let h: Harness;
let base: string;
beforeAll(async () => {
  h = await startHarness(undefined, { log: createLogger('info', sink) });
  base = examplePolicyText(h.jwks.uri);
});
afterAll(async () => h?.close());

/** A good version: WH03 granted or not, and a distinct comment so every version has its own revision. */
function validText(step: number, wh03: boolean): string {
  const granted = wh03 ? base.replace(ORIGINAL_LOCATIONS, 'locations: [WH01, WH02, WH03, "EU-*"]') : base;
  if (wh03 && granted === base)
    throw new Error('the example policy no longer has the expected locations line');
  return `${granted}\n# reload ${step}\n`;
}

/** A broken version that, were it ever served, would flip WH03 relative to the revision in force. */
function brokenText(kind: Step['kind'], step: number, servingGrantsWh03: boolean): string {
  const tempting = validText(step, !servingGrantsWh03);
  switch (kind) {
    case 'broken_yaml':
      return `${tempting}routes: [oops\n`;
    case 'unknown_permission': {
      const typo = tempting.replace(
        'permissions: [INV_TRANSACTION_CREATE, INV_TRANSACTION_READ]',
        'permissions: [INV_TRANSACTION_CREATE, INV_TRANSACTON_READ]',
      );
      if (typo === tempting) throw new Error('the example policy no longer has the create_transaction line');
      return typo;
    }
    case 'truncated':
      // Cut mid-route, as a half-written file would be.
      return tempting.slice(0, tempting.indexOf('  - name: create_transaction') + 16);
    default:
      throw new Error(`no text for ${kind}`);
  }
}

interface Answer {
  readonly location: 'WH01' | 'WH03';
  readonly revision: string | undefined;
  readonly reason: string | undefined;
  readonly status: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function reloadCount(result: 'success' | 'error'): Promise<number> {
  const { values } = await h.metrics.policyReloads.get();
  return values.find((v) => v.labels.result === result)?.value ?? 0;
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

describe('policy reloads under load', () => {
  it('20 good and broken versions, in place and as ConfigMap swaps: no failed check, no broken version served', async () => {
    const token = await h.syncToken('inventory.read inventory.write');
    const ask = (location: 'WH01' | 'WH03') =>
      h.send({
        method: 'POST',
        path: '/api/inventory/transactions',
        token,
        headers: JSON_BODY,
        body: transaction(location),
      });

    // Revision → does it grant WH03: every good version written, and only those.
    const grants = new Map<string, boolean>([[revisionOf(base), false]]);
    const answers: Answer[] = [];
    const failures: string[] = [];
    let stop = false;
    // Four callers, each bounded in count and time, checking WH03 and WH01 (always granted) in turn.
    const callers = Array.from({ length: 4 }, async (_, caller) => {
      const deadline = Date.now() + 45_000;
      for (let i = 0; !stop && i < 4000 && Date.now() < deadline; i++) {
        const location = (i + caller) % 2 === 0 ? 'WH03' : 'WH01';
        try {
          const answer = await ask(location);
          answers.push({
            location,
            revision: answer.raw.dynamic_metadata?.fields?.policy_revision?.string_value,
            reason: answer.reason,
            status: answer.status,
          });
        } catch (err) {
          failures.push(`gRPC error: ${(err as Error).message}`);
        }
      }
    });

    const file = h.policyFile;
    const dir = dirname(file);
    let servingGrantsWh03 = false;
    let lastGood = revisionOf(base);
    const goodRevisions: string[] = [lastGood];
    let brokenCount = 0;
    let finalTookMs = Number.POSITIVE_INFINITY;

    // kubelet's atomic writer: new timestamped dir, a temporary link to it renamed over `..data`, old dir gone.
    let generation = 0;
    let published: string | undefined;
    const publish = async (content: string) => {
      const versionDir = `..2026_11_25_10_00_${String(generation++).padStart(2, '0')}.000000001`;
      await mkdir(join(dir, versionDir));
      await writeFile(join(dir, versionDir, 'policy.yaml'), content);
      await symlink(versionDir, join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
      if (published !== undefined) await rm(join(dir, published), { recursive: true });
      published = versionDir;
    };

    const apply = async (steps: Step[], write: (content: string) => Promise<void>, first: number) => {
      for (const [index, step] of steps.entries()) {
        const n = first + index;
        if (step.kind === 'valid') {
          const text = validText(n, step.wh03);
          const revision = revisionOf(text);
          grants.set(revision, step.wh03);
          const written = Date.now();
          await write(text);
          const isFinal = n === IN_PLACE.length + CONFIGMAP.length;
          // Seen in a real answer's metadata, not just in server state.
          await until(
            async () =>
              (await ask('WH01')).raw.dynamic_metadata?.fields?.policy_revision?.string_value === revision,
            `reload ${n} serving revision ${revision}`,
            isFinal ? 1000 : 5000,
          );
          if (isFinal) finalTookMs = Date.now() - written;
          servingGrantsWh03 = step.wh03;
          lastGood = revision;
          goodRevisions.push(revision);
        } else {
          const errorsBefore = await reloadCount('error');
          if (step.kind === 'deleted') await unlink(file);
          else await write(brokenText(step.kind, n, servingGrantsWh03));
          brokenCount++;
          await until(async () => (await reloadCount('error')) > errorsBefore, `reload ${n} rejected`, 5000);
          // Still ready, still serving the last good revision.
          expect((await fetch(`http://${h.running.adminAddress}/readyz`)).status).toBe(200);
          expect(h.running.policies()[0]!.revision).toBe(lastGood);
        }
        await sleep(50); // let the callers see each state
      }
    };

    try {
      await apply(IN_PLACE, (content) => writeFile(file, content), 1);

      // Become a ConfigMap volume with the same content (policy.yaml → ..data/policy.yaml): nothing reloads.
      const { success, error } = { success: await reloadCount('success'), error: await reloadCount('error') };
      const current = validText(IN_PLACE.length - 1, true); // reload 9, the last good in-place version
      expect(revisionOf(current)).toBe(lastGood);
      await publish(current);
      await symlink('..data/policy.yaml', `${file}.link`);
      await rename(`${file}.link`, file);
      await sleep(500);
      expect([await reloadCount('success'), await reloadCount('error')]).toEqual([success, error]);

      await apply(CONFIGMAP, publish, IN_PLACE.length + 1);
    } finally {
      stop = true;
      await Promise.all(callers);
    }

    expect(failures).toEqual([]);
    // Enough traffic to have crossed every change, with both answers seen for WH03.
    expect(answers.length).toBeGreaterThan(200);
    const wh03 = answers.filter((a) => a.location === 'WH03');
    expect(new Set(wh03.map((a) => a.reason))).toEqual(new Set(['allowed', 'location_denied']));
    const inconsistent = answers.filter((a) => {
      if (a.revision === undefined || !grants.has(a.revision)) return true; // a broken or unknown revision
      const allowed = a.location === 'WH01' || grants.get(a.revision) === true;
      return allowed
        ? a.reason !== 'allowed' || a.status !== 200
        : a.reason !== 'location_denied' || a.status !== 403;
    });
    expect(inconsistent.slice(0, 5)).toEqual([]);
    expect(new Set(answers.map((a) => a.revision)).size).toBeGreaterThan(5);

    // The last good version, served within 1 s of being published.
    expect(finalTookMs).toBeLessThanOrEqual(1000);
    expect(h.running.policies()[0]!.revision).toBe(lastGood);
    expect(await reloadCount('error')).toBe(brokenCount);
    expect(brokenCount).toBe(9);
    expect(await reloadCount('success')).toBe(goodRevisions.length); // the start-up load and 11 swaps

    // Logged: each swap with old and new revision, in order; each rejection with located problems.
    const swaps = logLines.filter((l) => l.msg === 'policy reloaded');
    expect(swaps.map((l) => [l.previous_revision, l.policy_revision])).toEqual(
      goodRevisions.slice(1).map((revision, i) => [goodRevisions[i], revision]),
    );
    const rejections = logLines.filter(
      (l) => l.msg === 'policy change rejected; still serving its last good revision',
    );
    expect(rejections).toHaveLength(9);
    for (const line of rejections) {
      expect(line.level).toBe('error');
      const problems = line.problems as string[];
      expect(problems.length).toBeGreaterThan(0);
      for (const problem of problems) expect(problem).toMatch(/policy\.yaml:\d+:\d+: /);
    }
    expect(rejections.flatMap((l) => l.problems as string[]).join('\n')).toMatch(
      /unknown permission "INV_TRANSACTON_READ"/,
    );
    // The revision info metric names only the revision served.
    expect(await h.scrape()).toMatch(
      new RegExp(`scopegate_policy_revision_info\\{policy="inventory",revision="${lastGood}"\\} 1`),
    );
  }, 90_000);
});
