// Preloaded with `node --require` into a scopegate process: on exit, writes the OpenTelemetry modules the
// process loaded (CommonJS ones land in require.cache even when imported from ESM) to $LOADED_MODULES_REPORT.
const { writeFileSync } = require('node:fs');

process.on('exit', () => {
  const loaded = Object.keys(require.cache).filter((path) => path.includes('@opentelemetry'));
  writeFileSync(process.env.LOADED_MODULES_REPORT, JSON.stringify(loaded));
});
