// The live policy source against real files in a temp dir: a burst of saves is one reload, an untouched or
// re-saved file changes nothing, a deleted or broken file never replaces the last good revision (and is
// reported once), a Kubernetes ConfigMap `..data` swap is seen with and without file events, and an older
// read never wins over a newer one.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatProblem } from '../../../src/policy/index.js';
import { openPolicySource, type PolicySource, type PolicySourceOptions } from '../../../src/policy/source.js';
import type { CompiledPolicy, PolicyProblem } from '../../../src/policy/types.js';
import { compile, examplePolicyText } from '../../support/policies.js';
import { LIST_ROUTE, policy } from './fixtures.js';

const BASE = examplePolicyText();
/** A distinct valid policy per n (a comment changes the content, so the revision). */
const version = (n: number) => `${BASE}\n# version ${n}\n`;
const revisionOf = (text: string) => compile(text).revision;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function waitFor(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface Opened {
  readonly source: PolicySource<CompiledPolicy>;
  readonly swapped: Array<{ from?: string; to: string }>;
  readonly rejected: PolicyProblem[][];
  readonly restored: string[];
  readonly removed: string[];
  readonly prepared: string[];
}

/** The revision a one-file source serves. */
const served = (o: Opened) => o.source.policies()[0]?.revision;
const NOTHING = { swapped: [], rejected: [], removed: [] };

const opened: Opened[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((o) => o.source.close()));
});

async function open(
  path: string,
  options: Partial<PolicySourceOptions<CompiledPolicy>> = {},
  watch = true,
): Promise<Opened> {
  const swapped: Opened['swapped'] = [];
  const rejected: Opened['rejected'] = [];
  const restored: string[] = [];
  const removed: string[] = [];
  const prepared: string[] = [];
  const result = await openPolicySource<CompiledPolicy>({
    path,
    prepare: async (policy) => {
      prepared.push(policy.revision);
      return policy;
    },
    events: {
      swapped: (from, to) => swapped.push({ ...(from && { from: from.revision }), to: to.revision }),
      rejected: (_file, problems) => rejected.push([...problems]),
      restored: (serving) => restored.push(serving.revision),
      removed: (policy) => removed.push(policy.name),
    },
    pollMs: 60_000,
    ...options,
  });
  if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
  const o = { source: result.source, swapped, rejected, restored, removed, prepared };
  opened.push(o);
  if (watch) result.source.watch();
  return o;
}

function plainFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-source-'));
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, text);
  return file;
}

/**
 * A ConfigMap volume as kubelet's atomic writer lays it out: `policy.yaml -> ..data/policy.yaml`,
 * `..data -> ..<timestamp>/`. `publish` writes a new timestamped directory, points a temporary link at it,
 * renames that over `..data` (one atomic step) and removes the old directory.
 */
function configMapVolume(text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-configmap-'));
  let generation = 0;
  let current: string | undefined;
  const publish = (content: string) => {
    const versionDir = `..2026_11_25_10_00_${String(generation++).padStart(2, '0')}.${process.pid}`;
    mkdirSync(join(dir, versionDir));
    writeFileSync(join(dir, versionDir, 'policy.yaml'), content);
    symlinkSync(versionDir, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    if (current !== undefined) rmSync(join(dir, current), { recursive: true });
    current = versionDir;
  };
  publish(text);
  symlinkSync('..data/policy.yaml', join(dir, 'policy.yaml'));
  return { file: join(dir, 'policy.yaml'), publish };
}

describe('policy source: watching one file', () => {
  it('a burst of saves is one reload, of the last content, prepared once', async () => {
    const file = plainFile(version(0));
    // A generous debounce: the saves are 20 ms apart, so only a stall of 300 ms could split the burst.
    const o = await open(file, { debounceMs: 300 });
    for (let n = 1; n <= 5; n++) {
      writeFileSync(file, version(n));
      await sleep(20);
    }
    await waitFor(() => o.swapped.length > 0, 'the swap');
    await sleep(500); // longer than the debounce: a second reload would have happened by now
    expect(o.swapped).toEqual([{ from: revisionOf(version(0)), to: revisionOf(version(5)) }]);
    expect(o.prepared).toEqual([revisionOf(version(0)), revisionOf(version(5))]);
    expect(served(o)).toBe(revisionOf(version(5)));
  });

  it('saving the same content again changes nothing: no swap, no report, nothing prepared', async () => {
    const file = plainFile(version(0));
    const o = await open(file);
    writeFileSync(file, version(0));
    expect(await o.source.reload()).toEqual(NOTHING);
    await sleep(400);
    expect([o.swapped, o.rejected, o.restored, o.prepared.length]).toEqual([[], [], [], 1]);

    // The watcher was live all along: a real change is picked up.
    writeFileSync(file, version(1));
    await waitFor(() => o.swapped.length === 1, 'the swap');
    expect(served(o)).toBe(revisionOf(version(1)));
  });

  it('an editor-style save (write a temp file, rename it over) is seen', async () => {
    const file = plainFile(version(0));
    const o = await open(file);
    writeFileSync(`${file}.tmp`, version(1));
    renameSync(`${file}.tmp`, file);
    await waitFor(() => o.swapped.length === 1, 'the swap');
    expect(served(o)).toBe(revisionOf(version(1)));
  });

  it('a deleted file is reported once, the last good keeps serving; putting it back changes nothing', async () => {
    const file = plainFile(version(0));
    const o = await open(file, { pollMs: 150 });
    unlinkSync(file);
    await waitFor(() => o.rejected.length === 1, 'the rejection');
    expect(o.rejected[0]?.map(formatProblem)).toEqual([`${file}:1:1: cannot read the policy file (ENOENT)`]);
    expect(served(o)).toBe(revisionOf(version(0)));
    await sleep(600); // several polls of a file that stays deleted
    expect(o.rejected).toHaveLength(1);
    expect((await o.source.reload()).rejected).toHaveLength(1);
    expect(o.rejected).toHaveLength(1);

    writeFileSync(file, version(0));
    await waitFor(() => o.restored.length === 1, 'the restore');
    expect([o.swapped, o.prepared.length]).toEqual([[], 1]);
  });

  it('a broken file never replaces the last good revision; its problem is located and reported once', async () => {
    const file = plainFile(version(0));
    const o = await open(file);
    const typo = version(1).replace(
      'permissions: [INV_TRANSACTION_READ]',
      'permissions: [INV_TRANSACTON_READ]',
    );
    expect(typo).not.toBe(version(1));
    writeFileSync(file, typo);
    await waitFor(() => o.rejected.length === 1, 'the rejection');
    const lines = o.rejected[0]?.map(formatProblem) ?? [];
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(line).toMatch(
        /policy\.yaml:\d+:\d+: routes\[\d+\]\.permissions\[\d+\]: unknown permission "INV_TRANSACTON_READ"/,
      );
    }
    // SIGHUP on the same broken file: still refused, not reported (or counted) again.
    const again = await o.source.reload();
    expect(again.rejected.map((r) => r.file)).toEqual([file]);
    expect(o.rejected).toHaveLength(1);
    expect(served(o)).toBe(revisionOf(version(0)));

    // A truncated copy is a different breakage, reported on its own.
    writeFileSync(file, version(1).slice(0, version(1).indexOf('routes:') + 12));
    await waitFor(() => o.rejected.length === 2, 'the second rejection');
    expect([o.swapped, o.prepared.length]).toEqual([[], 1]);

    writeFileSync(file, version(2));
    await waitFor(() => o.swapped.length === 1, 'the fix');
    expect(served(o)).toBe(revisionOf(version(2)));
  });

  it('an older read never wins: a reload asked for during a slow one serves the newer file', async () => {
    const file = plainFile(version(0));
    let slow = true;
    const o = await open(
      file,
      {
        prepare: async (policy) => {
          // Only the first reload is slow: long enough for the file to change and a second reload to be asked.
          if (policy.revision === revisionOf(version(1)) && slow) await sleep(300);
          return policy;
        },
        fileEvents: false,
      },
      false,
    );
    writeFileSync(file, version(1));
    const first = o.source.reload();
    await sleep(50);
    writeFileSync(file, version(2));
    const [second, third] = [o.source.reload(), o.source.reload()];
    slow = false;
    expect((await first).swapped).toEqual([
      { file, from: revisionOf(version(0)), to: revisionOf(version(1)) },
    ]);
    expect((await second).swapped).toEqual([
      { file, from: revisionOf(version(1)), to: revisionOf(version(2)) },
    ]);
    expect(await third).toBe(await second); // asked while the same read was queued: one read, not two
    expect(served(o)).toBe(revisionOf(version(2)));
  });

  it('after close, changes are not followed and reloads say so', async () => {
    const file = plainFile(version(0));
    const o = await open(file, { pollMs: 100 });
    await o.source.close();
    writeFileSync(file, version(1));
    await sleep(400);
    expect(o.swapped).toEqual([]);
    expect(await o.source.reload()).toEqual({ ...NOTHING, closed: true });
    expect(served(o)).toBe(revisionOf(version(0)));
  });
});

describe('policy source: Kubernetes ConfigMap volumes', () => {
  it('an atomic ..data symlink swap is seen through the policy.yaml link', async () => {
    const volume = configMapVolume(version(0));
    const o = await open(volume.file);
    volume.publish(version(1));
    await waitFor(() => o.swapped.length === 1, 'the swap');
    expect(served(o)).toBe(revisionOf(version(1)));
    volume.publish(version(2));
    await waitFor(() => o.swapped.length === 2, 'the second swap');
    expect(o.swapped.map((s) => s.to)).toEqual([revisionOf(version(1)), revisionOf(version(2))]);
  });

  it('a swap that republishes the same content (kubelet resyncs) changes nothing', async () => {
    const volume = configMapVolume(version(0));
    const o = await open(volume.file);
    volume.publish(version(0));
    await sleep(400);
    expect(await o.source.reload()).toEqual(NOTHING);
    expect([o.swapped, o.rejected, o.prepared.length]).toEqual([[], [], 1]);
  });

  it('without file events (some filesystems have none), the poll still finds the swap', async () => {
    const volume = configMapVolume(version(0));
    const o = await open(volume.file, { fileEvents: false, pollMs: 200 });
    volume.publish(version(1));
    await waitFor(() => o.swapped.length === 1, 'the swap found by polling');
    expect(served(o)).toBe(revisionOf(version(1)));
  });
});

/** A small valid policy owning `hosts`, with `extra` top-level YAML (e.g. `default`, a `# version` comment). */
const owning = (hosts: string[], extra = '') =>
  policy(`match: { hosts: [${hosts.join(', ')}] }\n${extra}`, LIST_ROUTE);

function policyDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-set-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const names = (o: Opened) => o.source.policies().map((p) => p.name);
const owner = (o: Opened, host: string) => {
  const chosen = o.source.current().select({ host });
  return chosen.ok ? chosen.value.name : undefined;
};

describe('policy source: a directory of policies', () => {
  it('serves every *.yaml and *.yml file as a policy named after it; other and hidden entries are not policies', async () => {
    const dir = policyDir({
      'inventory.yaml': owning(['inventory.example.com']),
      'shipments.yml': owning(['shipments.example.com']),
      'README.md': '# not a policy',
      '.inventory.yaml.swp': 'junk',
    });
    mkdirSync(join(dir, 'archive.yaml'));
    const o = await open(dir);
    expect(names(o)).toEqual(['inventory', 'shipments']);
    expect(owner(o, 'Inventory.Example.com:443')).toBe('inventory');
    expect(owner(o, 'shipments.example.com')).toBe('shipments');
    expect(owner(o, 'orders.example.com')).toBeUndefined();
    expect(o.source.readiness()).toEqual({ problems: [], notes: [] });
  });

  it('a file added, changed or removed live changes only its own policy', async () => {
    const dir = policyDir({ 'inventory.yaml': owning(['inventory.example.com']) });
    const o = await open(dir);
    writeFileSync(join(dir, 'shipments.yaml'), owning(['shipments.example.com']));
    await waitFor(() => owner(o, 'shipments.example.com') === 'shipments', 'the added policy');
    const inventory = o.source.current().named('inventory');

    writeFileSync(join(dir, 'shipments.yaml'), owning(['shipments.example.com', 'parcels.example.com']));
    await waitFor(() => owner(o, 'parcels.example.com') === 'shipments', 'the changed policy');
    expect(o.source.current().named('inventory')).toBe(inventory); // untouched: the same compiled revision

    unlinkSync(join(dir, 'shipments.yaml'));
    await waitFor(() => o.removed.length === 1, 'the removal');
    expect(o.removed).toEqual(['shipments']);
    expect(names(o)).toEqual(['inventory']);
    expect(owner(o, 'shipments.example.com')).toBeUndefined();
    expect(o.swapped.map((s) => s.from === undefined)).toEqual([true, false]);
  });

  it('among many files, a round removes exactly the files that left and keeps every other revision as it was', async () => {
    const files = Object.fromEntries(
      Array.from({ length: 60 }, (_, i) => {
        const name = `svc-${String(i).padStart(2, '0')}`;
        return [`${name}.yaml`, owning([`${name}.example.com`])];
      }),
    );
    const dir = policyDir(files);
    const o = await open(dir, {}, false);
    const before = new Map(o.source.policies().map((p) => [p.name, p]));
    for (const name of ['svc-00', 'svc-31', 'svc-59']) unlinkSync(join(dir, `${name}.yaml`));
    writeFileSync(join(dir, 'svc-60.yaml'), owning(['svc-60.example.com']));

    const outcome = await o.source.reload();
    expect(outcome.removed.map((file) => file.slice(dir.length + 1))).toEqual([
      'svc-00.yaml',
      'svc-31.yaml',
      'svc-59.yaml',
    ]);
    expect(outcome.swapped.map((s) => s.file.slice(dir.length + 1))).toEqual(['svc-60.yaml']);
    expect(o.removed).toEqual(['svc-00', 'svc-31', 'svc-59']);
    const kept = o.source.policies().filter((p) => p.name !== 'svc-60');
    expect(kept).toHaveLength(57);
    for (const p of kept) expect(p).toBe(before.get(p.name)); // untouched: the same compiled revision
    expect(owner(o, 'svc-31.example.com')).toBeUndefined();
    expect(owner(o, 'svc-30.example.com')).toBe('svc-30');
    expect(owner(o, 'svc-60.example.com')).toBe('svc-60');
  });

  it('a broken edit keeps only that policy on its last good revision while another reloads', async () => {
    const dir = policyDir({
      'inventory.yaml': owning(['inventory.example.com']),
      'shipments.yaml': owning(['shipments.example.com']),
    });
    const o = await open(dir);
    const good = o.source.current().named('inventory')!.revision;
    writeFileSync(join(dir, 'inventory.yaml'), 'version: 1\nroutes: [');
    writeFileSync(join(dir, 'shipments.yaml'), owning(['shipments.example.com', 'parcels.example.com']));
    await waitFor(
      () => owner(o, 'parcels.example.com') === 'shipments' && o.rejected.length === 1,
      'both outcomes',
    );
    expect(o.source.current().named('inventory')!.revision).toBe(good);
    // Ready still (it loaded at start-up); the note says what is wrong.
    const { problems, notes } = o.source.readiness();
    expect(problems).toEqual([]);
    expect(notes).toEqual([
      expect.stringMatching(
        new RegExp(
          `^policy file ${join(dir, 'inventory.yaml')} keeps revision ${good}; its change was rejected: .*inventory\\.yaml:2:`,
        ),
      ),
    ]);
    expect((await o.source.reload()).rejected.map((r) => r.file)).toEqual([join(dir, 'inventory.yaml')]);
  });

  it('at start-up, two files claiming one host both own nothing, each naming the other; not ready until fixed', async () => {
    const dir = policyDir({
      'a.yaml': owning(['shared.example.com']),
      'b.yaml': owning(['shared.example.com', 'b.example.com']),
      'c.yaml': owning(['c.example.com']),
    });
    const o = await open(dir);
    expect(names(o)).toEqual(['c']);
    expect(owner(o, 'shared.example.com')).toBeUndefined();
    expect(owner(o, 'b.example.com')).toBeUndefined();
    const a = join(dir, 'a.yaml');
    const b = join(dir, 'b.yaml');
    expect(o.source.readiness().problems).toEqual([
      `policy file ${a} is not loaded: ${a}:11:18: match.hosts[0]: host "shared.example.com" is also claimed by ${b}:11:18 (policy "b"); a request belongs to one policy`,
      `policy file ${b} is not loaded: ${b}:11:18: match.hosts[0]: host "shared.example.com" is also claimed by ${a}:11:18 (policy "a"); a request belongs to one policy`,
    ]);

    // a gives the host up: a loads, and then b (retried, since it is not serving) owns it.
    writeFileSync(a, owning(['a.example.com']));
    await waitFor(() => owner(o, 'shared.example.com') === 'b', 'b to own the host');
    expect(names(o)).toEqual(['a', 'b', 'c']);
    expect(o.source.readiness()).toEqual({ problems: [], notes: [] });
  });

  it('live, a file that claims what another serves is refused; the one serving keeps its claim', async () => {
    const dir = policyDir({
      'a.yaml': owning(['shared.example.com']),
      'b.yaml': owning(['b.example.com']),
    });
    const o = await open(dir);
    writeFileSync(join(dir, 'b.yaml'), owning(['b.example.com', 'shared.example.com']));
    await waitFor(() => o.rejected.length === 1, 'the refusal');
    expect(o.rejected[0]!.map(formatProblem)).toEqual([
      `${join(dir, 'b.yaml')}:11:33: match.hosts[1]: host "shared.example.com" belongs to ${join(dir, 'a.yaml')}:11:18 (policy "a"), which keeps it; a request belongs to one policy`,
    ]);
    expect(owner(o, 'shared.example.com')).toBe('a');
    expect(owner(o, 'b.example.com')).toBe('b'); // b's last good revision
    expect(o.source.readiness().problems).toEqual([]);
  });

  it('a file added broken later owns nothing and is reported, and readiness holds', async () => {
    const dir = policyDir({ 'a.yaml': owning(['a.example.com']) });
    const o = await open(dir);
    writeFileSync(join(dir, 'b.yaml'), 'version: 2\n');
    await waitFor(() => o.rejected.length === 1, 'the report');
    expect(names(o)).toEqual(['a']);
    expect(o.source.readiness()).toEqual({
      problems: [],
      notes: [
        expect.stringMatching(
          /^policy file .*b\.yaml owns nothing: .*b\.yaml:1:1: authentication: required key "authentication" is missing/,
        ),
      ],
    });
  });

  it('a directory with no policy file, or none that loads, is refused at start-up', async () => {
    const empty = policyDir({ 'notes.txt': 'x' });
    expect(await openPolicySource({ path: empty, prepare: async (p) => p })).toEqual({
      ok: false,
      problems: [
        { file: empty, line: 1, col: 1, field: '', message: 'the directory holds no policy files (*.yaml)' },
      ],
    });
    const broken = policyDir({ 'a.yaml': 'version: 1\n' });
    const result = await openPolicySource({ path: broken, prepare: async (p) => p });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.problems.map(formatProblem)[0]).toMatch(
      /a\.yaml:1:1: authentication: required key/,
    );
  });

  it('a Kubernetes projected volume of several ConfigMaps: one ..data swap changes every file at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scopegate-projected-'));
    let generation = 0;
    let current: string | undefined;
    const publish = (files: Record<string, string>) => {
      const versionDir = `..2026_12_04_10_00_${String(generation++).padStart(2, '0')}.${process.pid}`;
      mkdirSync(join(dir, versionDir));
      for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, versionDir, name), text);
      symlinkSync(versionDir, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
      if (current !== undefined) rmSync(join(dir, current), { recursive: true });
      current = versionDir;
    };
    publish({ 'a.yaml': owning(['a.example.com']), 'b.yaml': owning(['b.example.com']) });
    for (const name of ['a.yaml', 'b.yaml']) symlinkSync(`..data/${name}`, join(dir, name));
    const o = await open(dir);
    expect(names(o)).toEqual(['a', 'b']);
    // The host moves from a to b in one publish: both files change together, so neither is refused.
    publish({
      'a.yaml': owning(['a.example.com']),
      'b.yaml': owning(['b.example.com', 'moved.example.com']),
    });
    await waitFor(() => owner(o, 'moved.example.com') === 'b', 'the swap');
    publish({ 'a.yaml': owning(['moved2.example.com']), 'b.yaml': owning(['b.example.com']) });
    await waitFor(() => owner(o, 'moved2.example.com') === 'a', 'the second swap');
    expect(owner(o, 'moved.example.com')).toBeUndefined();
    expect(o.rejected).toEqual([]);
  });
});
