// The supported Node.js range is stated three times (bin/node-support.js, which `scopegate` checks before it
// loads anything; package.json's engines; the README's requirements line) and the image and CI pin the
// recommended line: they must agree. The process-level test (a faked old Node.js) is in
// test/integration/node-version.test.ts.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  isSupportedNode,
  parseVersion,
  RECOMMENDED_MAJOR,
  supportedRange,
  unsupportedNodeMessage,
} from '../../bin/node-support.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

describe('isSupportedNode', () => {
  it.each([
    ['20.19.0', true],
    ['20.20.2', true],
    ['v20.19.5', true],
    ['22.12.0', true],
    ['22.22.1', true],
    ['24.0.0', true],
    ['24.19.0', true],
    ['26.1.0', true],
  ])('%s is supported', (version, expected) => {
    expect(isSupportedNode(version)).toBe(expected);
  });

  it.each([
    ['14.21.3', 'too old for anything'],
    ['18.20.8', 'the last 18.x'],
    ['20.0.0', 'an early 20.x'],
    ['20.18.3', 'the last 20.x before 20.19'],
    ['21.7.3', 'the odd line between, which lru-cache refuses'],
    ['22.11.0', 'the last 22.x before 22.12'],
    ['', 'no version at all'],
    ['twenty', 'not a version'],
  ])('%s is not (%s)', (version) => {
    expect(isSupportedNode(version)).toBe(false);
  });
});

describe('parseVersion', () => {
  it('reads major, minor and patch, with or without the v, ignoring a pre-release suffix', () => {
    expect(parseVersion('v24.19.0')).toEqual([24, 19, 0]);
    expect(parseVersion('20.19.12-nightly2026')).toEqual([20, 19, 12]);
    expect(parseVersion('20.19')).toBeUndefined();
  });
});

describe('unsupportedNodeMessage', () => {
  it('is one line naming the version, the supported range and the recommended line', () => {
    const message = unsupportedNodeMessage('18.20.8');
    expect(message).toBe(
      'scopegate: Node.js v18.20.8 is not supported; scopegate needs Node.js ^20.19.0 || >=22.12.0 (24 LTS recommended)',
    );
    expect(message).not.toContain('\n');
  });

  it('is undefined on a supported version', () => {
    expect(unsupportedNodeMessage('24.19.0')).toBeUndefined();
    expect(unsupportedNodeMessage(process.versions.node)).toBeUndefined();
  });
});

describe('the supported range, everywhere it is stated', () => {
  const pkg = JSON.parse(read('package.json')) as { engines: { node: string } };

  it("is package.json's engines.node, in npm's notation", () => {
    expect(supportedRange()).toBe('^20.19.0 || >=22.12.0');
    expect(pkg.engines.node).toBe(supportedRange());
  });

  it("is the README's requirements line, with the recommended line", () => {
    const requirements = read('README.md')
      .split('\n')
      .find((line) => line.startsWith('Node.js '));
    expect(requirements).toContain(`\`${supportedRange()}\``);
    expect(requirements).toContain(`${RECOMMENDED_MAJOR} LTS recommended`);
  });

  it('includes the recommended line, the one CI installs and the image runs', () => {
    const pinned = /NODE_VERSION="([\d.]+)"/.exec(read('scripts/install-node.sh'))?.[1];
    expect(pinned?.split('.')[0]).toBe(String(RECOMMENDED_MAJOR));
    expect(isSupportedNode(pinned!)).toBe(true);
  });
});
