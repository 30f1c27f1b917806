// `scopegate diff OLD NEW` on real files and directories: exit 0 when they mean the same, 3 when they
// differ (with one line per change), 2 when a side cannot be read or is not a valid policy.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { diffCommand } from '../../../src/review/diff-command.js';
import { examplePolicyText, shipmentsPolicyText } from '../../support/policies.js';

let out: string[];
let err: string[];
let usage: string[];
const io = {
  out: (text: string) => void out.push(text),
  err: (text: string) => void err.push(text),
  usage: (message: string) => {
    usage.push(message);
    return 2;
  },
};
beforeEach(() => {
  out = [];
  err = [];
  usage = [];
});

const base = examplePolicyText('https://idp.example.com/jwks');
const granted = base.replace('locations: [WH01, WH02, "EU-*"]', 'locations: [WH01, WH02, WH03, "EU-*"]');

function files(texts: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-diff-'));
  for (const [name, text] of Object.entries(texts)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

describe('scopegate diff', () => {
  it('exit 0 and says so when two files mean the same', async () => {
    const dir = files({ 'a.yaml': base, 'b.yaml': `# reworded\n${base}` });
    expect(await diffCommand([join(dir, 'a.yaml'), join(dir, 'b.yaml')], io)).toBe(0);
    expect(out.join('\n')).toBe('no change in meaning (1 policy)');
  });

  it('exit 3 with one line per change, by policy, with both revisions', async () => {
    const dir = files({ 'policy.yaml': base, 'candidate.yaml': granted });
    expect(await diffCommand([join(dir, 'policy.yaml'), join(dir, 'candidate.yaml')], io)).toBe(3);
    const [head, line] = out.join('\n').split('\n');
    expect(head).toMatch(/^policy inventory \([0-9a-f]{12} → [0-9a-f]{12}\): 1 change$/);
    expect(line).toBe(
      '  locations  subject svc-inventory-sync (https://idp.example.com/): locations granted WH03'.replace(
        'https://idp.example.com/',
        'https://dev-issuer.scopegate.local/',
      ),
    );
  });

  it('--json: every change and the counts by kind', async () => {
    const dir = files({ 'policy.yaml': base, 'candidate.yaml': granted });
    expect(await diffCommand(['--json', join(dir, 'policy.yaml'), join(dir, 'candidate.yaml')], io)).toBe(3);
    const report = JSON.parse(out.join('\n'));
    expect(report.counts).toEqual({ locations: 1 });
    expect(report.changes[0]).toMatchObject({ kind: 'locations', added: ['WH03'] });
  });

  it('directories: policies paired by name, added and removed ones named', async () => {
    const dir = files({
      'old/inventory.yaml': base,
      'new/inventory.yaml': granted,
      'new/shipments.yaml': shipmentsPolicyText('https://idp.example.com/jwks'),
    });
    expect(await diffCommand([join(dir, 'old'), join(dir, 'new')], io)).toBe(3);
    const text = out.join('\n');
    expect(text).toContain('policy shipments (- → ');
    expect(text).toContain('policy_added  policy shipments: added');
    expect(text).toContain('locations granted WH03');
  });

  it('exit 2 naming the problem when a side is broken or missing, and on usage mistakes', async () => {
    const dir = files({ 'policy.yaml': base, 'broken.yaml': 'version: 1\nroutes: [' });
    expect(await diffCommand([join(dir, 'policy.yaml'), join(dir, 'broken.yaml')], io)).toBe(2);
    expect(err.join('\n')).toContain('broken.yaml:');
    expect(out).toEqual([]);
    expect(await diffCommand([join(dir, 'policy.yaml'), join(dir, 'nothing-here.yaml')], io)).toBe(2);
    expect(await diffCommand([join(dir, 'policy.yaml')], io)).toBe(2);
    expect(usage).toEqual(['diff needs OLD and NEW (each a policy FILE or DIR)']);
  });
});
