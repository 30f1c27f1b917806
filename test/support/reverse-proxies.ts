// Real nginx and Caddy in front of scopegate's forward-auth door and the inventory upstream, for the e2e tests
// of the shipped proxy configs (proxies/): each shipped file is run with only its addresses rewritten to free
// loopback ports (as src/dev/envoy.ts localEnvoyConfig does for Envoy), in a temp folder of its own, as a
// foreground child process. Under CI=true a missing nginx or Caddy fails the suite (tools.ts).
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acceptsConnections } from '../../src/dev/envoy.js';
import { ROOT } from './process.js';
import { findTool, requiredTool } from './tools.js';

export const NGINX_CONFIG = join(ROOT, 'proxies', 'nginx', 'scopegate.conf');
export const CADDYFILE = join(ROOT, 'proxies', 'caddy', 'Caddyfile');

export const nginxTool = requiredTool(
  'nginx',
  findTool('nginx', { envVar: 'NGINX_BIN', local: ['/usr/sbin/nginx'] }),
  'run `bash scripts/install-proxies.sh` (Debian packages nginx and caddy), or set NGINX_BIN',
);
export const caddyTool = requiredTool(
  'caddy',
  findTool('caddy', { envVar: 'CADDY_BIN', local: ['/usr/bin/caddy'] }),
  'run `bash scripts/install-proxies.sh` (Debian packages nginx and caddy), or set CADDY_BIN',
);

/** Where the shipped config's names point on this machine. */
export interface ProxyPorts {
  /** The proxy's own listener. */
  readonly listen: number;
  /** scopegate's `--forward-auth` port. */
  readonly forwardAuth: number;
  /** The inventory upstream's port. */
  readonly inventory: number;
}

/** A port free right now on 127.0.0.1 (nginx and Caddy cannot report a port 0 they bound). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Replaces exactly one occurrence of each `from`; a shipped file that changed shape fails loudly here. */
function rewriteOnce(text: string, file: string, changes: ReadonlyArray<readonly [string, string]>): string {
  let out = text;
  for (const [from, to] of changes) {
    const count = out.split(from).length - 1;
    if (count !== 1) throw new Error(`${file}: expected "${from}" once, found it ${count} times`);
    out = out.replace(from, to);
  }
  return out;
}

/** proxies/nginx/scopegate.conf with its listener and upstreams on loopback; nothing else changes. */
export function localNginxConfig(ports: ProxyPorts, file = NGINX_CONFIG): string {
  return rewriteOnce(readFileSync(file, 'utf8'), file, [
    ['server scopegate:9193;', `server 127.0.0.1:${ports.forwardAuth};`],
    ['server inventory:8081;', `server 127.0.0.1:${ports.inventory};`],
    ['listen 8080;', `listen 127.0.0.1:${ports.listen};`],
  ]);
}

/** proxies/caddy/Caddyfile with its site, scopegate and upstream on loopback; nothing else changes. */
export function localCaddyfile(ports: ProxyPorts & { readonly admin: number }, file = CADDYFILE): string {
  const local = rewriteOnce(readFileSync(file, 'utf8'), file, [
    ['forward_auth scopegate:9193', `forward_auth 127.0.0.1:${ports.forwardAuth}`],
    ['reverse_proxy inventory:8081', `reverse_proxy 127.0.0.1:${ports.inventory}`],
    [':8080 {', `http://127.0.0.1:${ports.listen} {`],
  ]);
  // Caddy's own admin API on a free port too, so several can run side by side; no HTTPS; its storage goes to the temp HOME.
  return `{\n\tadmin 127.0.0.1:${ports.admin}\n\tauto_https off\n}\n\n${local}`;
}

export interface RunningProxy {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** What the proxy wrote to its error log and stderr, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

async function run(
  what: string,
  bin: string,
  args: readonly string[],
  dir: string,
  port: number,
  logFiles: readonly string[],
): Promise<RunningProxy> {
  const child = spawn(bin, args, {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HOME: dir },
  });
  live.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-16 * 1024);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      live.delete(child);
      resolve();
    });
  });
  const logs = () =>
    [output, ...logFiles.map((file) => readFileSync(file, 'utf8'))].join('\n').slice(-16 * 1024);
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exit;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (exited) break;
    if (await acceptsConnections(port)) return { url: `http://127.0.0.1:${port}`, logs, stop };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  let said = '';
  try {
    said = logs();
  } catch {
    said = output;
  }
  await stop();
  throw new Error(`${what} did not serve on 127.0.0.1:${port}:\n${said}`);
}

/**
 * A real nginx on the shipped config, run in the foreground with everything it writes (pid, logs, temp files)
 * in a temp folder: `nginx -p DIR -e DIR/error.log -c DIR/nginx.conf -g 'daemon off;'`.
 */
export async function startNginx(ports: ProxyPorts): Promise<RunningProxy> {
  const bin = nginxTool.require();
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-nginx-'));
  // Run as root, nginx's workers run as nobody: they must reach their temp folders in here.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'scopegate.conf'), localNginxConfig(ports));
  const errorLog = join(dir, 'error.log');
  writeFileSync(errorLog, '');
  writeFileSync(
    join(dir, 'nginx.conf'),
    [
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${errorLog} info;`,
      'events { worker_connections 256; }',
      'http {',
      `  access_log ${join(dir, 'access.log')};`,
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
        (kind) => `  ${kind}_temp_path ${join(dir, `${kind}_temp`)};`,
      ),
      `  include ${join(dir, 'scopegate.conf')};`,
      '}',
      '',
    ].join('\n'),
  );
  return run(
    'nginx',
    bin,
    ['-p', dir, '-e', errorLog, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'],
    dir,
    ports.listen,
    [errorLog],
  );
}

/** A real Caddy on the shipped Caddyfile: `caddy run --config DIR/Caddyfile --adapter caddyfile`. */
export async function startCaddy(ports: ProxyPorts): Promise<RunningProxy> {
  const bin = caddyTool.require();
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-caddy-'));
  const config = join(dir, 'Caddyfile');
  writeFileSync(config, localCaddyfile({ ...ports, admin: await freePort() }));
  return run('caddy', bin, ['run', '--config', config, '--adapter', 'caddyfile'], dir, ports.listen, []);
}
