// Preloaded with `node --require` by test/integration/node-version.test.ts: this process then reports the
// Node.js version in FAKE_NODE_VERSION (process.version and process.versions.node), so that scopegate's refusal
// of an unsupported Node.js is tested on the real entry point without installing an old Node.js. Only the test
// sets FAKE_NODE_VERSION; scopegate itself reads no such variable.
const version = process.env.FAKE_NODE_VERSION;
if (version) {
  Object.defineProperty(process, 'version', { value: `v${version}` });
  Object.defineProperty(process, 'versions', { value: { ...process.versions, node: version } });
}
