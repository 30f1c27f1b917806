// The command table and its usage errors, with main() called in this process: what each command refuses
// before doing anything (exit 2, the message, then the usage text), help, and `keys` and `token` end to end
// on a temporary folder. The binary itself (validate, serve, check, SIGHUP, SIGTERM) runs in
// test/integration/cli.test.ts.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli.js';

let out: string[];
let err: string[];
beforeEach(() => {
  out = [];
  err = [];
  vi.spyOn(console, 'log').mockImplementation((text: string) => void out.push(String(text)));
  vi.spyOn(console, 'error').mockImplementation((text: string) => void err.push(String(text)));
  // main() reads the environment twins: none of this machine's may leak in.
  for (const name of ['SCOPEGATE_POLICY', 'SCOPEGATE_SERVER']) vi.stubEnv(name, '');
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

const COMMANDS = [
  'serve',
  'validate',
  'diff',
  'replay',
  'explain',
  'test',
  'keys',
  'token',
  'check',
  'dev-upstream',
  'dev-issuer',
  'demo',
] as const;

/** A usage error: exit 2, stderr `scopegate: MESSAGE`, a blank line, then the usage text. */
async function expectUsageError(argv: string[], message: string | RegExp) {
  expect(await main(argv)).toBe(2);
  const text = err.join('\n');
  expect(text.startsWith('scopegate: ')).toBe(true);
  expect(text.split('\n\n')[0]).toMatch(message);
  expect(text).toContain('\n\nscopegate — Envoy external authorization by OAuth2 scope, role and location');
  expect(out).toEqual([]);
}

describe('help and the command table', () => {
  it('no command prints the usage on stdout and exits 2; help, --help and -h exit 0', async () => {
    expect(await main([])).toBe(2);
    for (const flag of ['help', '--help', '-h']) expect(await main([flag]), flag).toBe(0);
    expect(out).toHaveLength(4);
    expect(new Set(out).size).toBe(1);
    expect(out[0]).toMatch(/^scopegate — /);
    expect(err).toEqual([]);
  });

  it('the usage shows every command', async () => {
    await main(['help']);
    for (const command of COMMANDS)
      expect(out[0], command).toMatch(new RegExp(`^  scopegate ${command} `, 'm'));
  });

  it('an unknown command is a usage error naming it', async () => {
    await expectUsageError(['frobnicate', '--policy', 'x'], 'scopegate: unknown command "frobnicate"');
  });

  it.each(COMMANDS.filter((command) => command !== 'keys' && command !== 'validate'))(
    '%s knows its own flags: an unknown one is a usage error about the flag, not the command',
    async (command) => {
      await expectUsageError([command, '--no-such-flag'], /no-such-flag/);
      expect(err.join('\n')).not.toContain('unknown command');
    },
  );
});

describe('usage errors, before any work', () => {
  it('validate with no files', async () => {
    await expectUsageError(['validate'], 'scopegate: validate needs at least one FILE');
  });

  it('serve with no policy (neither --policy nor SCOPEGATE_POLICY)', async () => {
    await expectUsageError(
      ['serve', '--listen', '127.0.0.1:0'],
      /--policy FILE \(or SCOPEGATE_POLICY\) is required/,
    );
  });

  it('keys without exactly one DIR', async () => {
    await expectUsageError(['keys'], 'scopegate: keys needs exactly one DIR');
    err = [];
    await expectUsageError(['keys', 'a', 'b'], 'scopegate: keys needs exactly one DIR');
  });

  it('token without --sub, without a policy or issuer, with a ttl that is not a whole number', async () => {
    await expectUsageError(['token'], 'scopegate: token needs --sub SUBJECT');
    err = [];
    await expectUsageError(
      ['token', '--sub', 'svc'],
      'scopegate: token needs --policy FILE (or SCOPEGATE_POLICY), or --iss, --aud and --key',
    );
    err = [];
    await expectUsageError(
      ['token', '--sub', 'svc', '--iss', 'i', '--aud', 'a', '--key', 'k', '--ttl', 'soon'],
      'scopegate: --ttl must be an integer number of seconds',
    );
  });

  it('token with a key file that is not there says how to make one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scopegate-cli-'));
    await expectUsageError(
      ['token', '--sub', 'svc', '--iss', 'i', '--aud', 'a', '--key', join(dir, 'signing-key.jwk')],
      `scopegate: no signing key at ${join(dir, 'signing-key.jwk')}; create one with: scopegate keys ${dir}`,
    );
  });

  it('check without --path, or with a --header that is not name:value', async () => {
    await expectUsageError(['check'], 'scopegate: check needs --path PATH');
    err = [];
    await expectUsageError(
      ['check', '--path', '/', '--header', 'x-location WH01'],
      'scopegate: --header expects name:value, got "x-location WH01"',
    );
  });
});

describe('keys and token', () => {
  it('keys creates a key pair once; a second run keeps it', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'scopegate-cli-')), 'dev-keys');
    expect(await main(['keys', dir])).toBe(0);
    expect(out).toEqual([`created ${join(dir, 'signing-key.jwk')} and ${join(dir, 'jwks.json')}`]);
    const key = readFileSync(join(dir, 'signing-key.jwk'), 'utf8');
    expect(await main(['keys', dir])).toBe(0);
    expect(out[1]).toBe(`keys already in ${dir}`);
    expect(readFileSync(join(dir, 'signing-key.jwk'), 'utf8')).toBe(key);
  });

  it('token mints what the flags say: a client implies client_credentials, lists are split and trimmed', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'scopegate-cli-')), 'dev-keys');
    await main(['keys', dir]);
    out = [];
    const argv = [
      'token',
      '--iss',
      'https://idp.example/',
      '--aud',
      'inventory',
      '--key',
      join(dir, 'signing-key.jwk'),
    ];
    expect(
      await main([
        ...argv,
        '--sub',
        'svc-inventory-sync',
        '--client',
        'inventory-sync',
        '--scope',
        'inventory.read inventory.write',
        '--roles',
        'Inventory Data Reader, Inventory Transaction Manager',
        '--locations',
        'WH01,,WH02',
        '--ttl=120',
      ]),
    ).toBe(0);
    expect(out).toHaveLength(1);
    const claims = decodeJwt(out[0]!);
    expect(claims).toMatchObject({
      iss: 'https://idp.example/',
      aud: 'inventory',
      sub: 'svc-inventory-sync',
      client_id: 'inventory-sync',
      scope: 'inventory.read inventory.write',
      gty: 'client_credentials',
      roles: ['Inventory Data Reader', 'Inventory Transaction Manager'],
      locations: ['WH01', 'WH02'],
    });
    expect(claims.exp! - claims.iat!).toBe(120);
    expect(decodeProtectedHeader(out[0]!)).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });

    out = [];
    expect(await main([...argv, '--sub', 'user-1'])).toBe(0);
    const bare = decodeJwt(out[0]!);
    for (const claim of ['client_id', 'scope', 'gty', 'roles', 'locations'])
      expect(bare).not.toHaveProperty(claim);
  });
});

describe('check', () => {
  it('a server that does not answer is exit 2, naming the server', async () => {
    expect(await main(['check', '--server', '127.0.0.1:1', '--path', '/', '--timeout', '500'])).toBe(2);
    expect(err.join('\n')).toMatch(/^scopegate: Check to 127\.0\.0\.1:1 failed: /);
    expect(out).toEqual([]);
  });
});
