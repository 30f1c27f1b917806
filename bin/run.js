// Runs the compiled CLI (built by `npm ci` through the prepare script), once bin/scopegate.js has checked the
// Node.js version.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  console.error('scopegate: dist/ is missing; run `npm ci` (or `npm run build`) first.');
  process.exit(2);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
