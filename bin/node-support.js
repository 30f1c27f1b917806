// Which Node.js versions scopegate runs on, and the one line that refuses the others. bin/scopegate.js asks
// this before it loads anything else, so this file imports nothing and keeps to syntax every Node.js since 12
// parses (no ?. or ??): an old Node reaches the message, not a SyntaxError or a dependency's crash.
// package.json's engines.node and the README's requirements line say the same; a test holds them to this.

/**
 * The supported release lines: each from `from`, up to (not including) major `below` when it has one. 20.19 is
 * the oldest 20.x the dependencies support (vitest, rolldown; lru-cache excludes 21), 22.12 the oldest 22.x.
 */
export const SUPPORTED_LINES = [{ from: [20, 19, 0], below: 21 }, { from: [22, 12, 0] }];

/** The line to run in production and the one the container image ships. */
export const RECOMMENDED_MAJOR = 24;

/** The supported range in npm's notation: exactly package.json's engines.node. */
export function supportedRange() {
  return SUPPORTED_LINES.map((line) => {
    const from = line.from.join('.');
    return line.below === line.from[0] + 1 ? `^${from}` : `>=${from}`;
  }).join(' || ');
}

/** [major, minor, patch] of a version such as "24.19.0" or "v18.20.4", or undefined when it is not one. */
export function parseVersion(text) {
  const match = /^v?(\d+)\.(\d+)\.(\d+)/.exec(String(text));
  return match ? [Number(match[1]), Number(match[2]), Number(match[3])] : undefined;
}

function atLeast(version, from) {
  for (let i = 0; i < 3; i++) if (version[i] !== from[i]) return version[i] > from[i];
  return true;
}

/** True when `version` (as in process.versions.node) is in a supported line. */
export function isSupportedNode(version) {
  const parsed = parseVersion(version);
  if (parsed === undefined) return false;
  return SUPPORTED_LINES.some(
    (line) => atLeast(parsed, line.from) && (line.below === undefined || parsed[0] < line.below),
  );
}

/** undefined on a supported Node.js; else the one line to print before exiting non-zero. */
export function unsupportedNodeMessage(version) {
  if (isSupportedNode(version)) return undefined;
  const shown = String(version).replace(/^v?/, 'v');
  return `scopegate: Node.js ${shown} is not supported; scopegate needs Node.js ${supportedRange()} (${RECOMMENDED_MAJOR} LTS recommended)`;
}
