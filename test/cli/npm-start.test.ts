/**
 * What a newcomer does: `npm start` (here: the same command line, on a free port and a temp data dir),
 * then the printed `fedai infer` command — a full signed round trip, streaming too.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

let child: ChildProcess;
let dataDir: string;
let banner = '';
let url = '';

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'fedai-npm-start-'));
  // npm start's own command line, minus npm: node --import ./scripts/register-ts.mjs supervisor/cli/fedai-node.ts serve
  const argv = pkg.scripts.start!.split(' ');
  expect(argv[0]).toBe('node');
  child = spawn(process.execPath, argv.slice(1), {
    cwd: REPO,
    env: { PATH: process.env.PATH, NODE_PORT: '0', NODE_DATA_DIR: dataDir, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr!.on('data', (d: Buffer) => (banner += d.toString()));
  const started = Date.now();
  while (!/listening on (http:\/\/\S+)/.test(banner) || !banner.includes('--stream')) {
    if (child.exitCode !== null) throw new Error(`npm start exited: ${banner}`);
    if (Date.now() - started > 45_000) throw new Error(`no banner: ${banner}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  url = /listening on (http:\/\/\S+)/.exec(banner)![1]!;
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe('npm start', () => {
  it('serves /health 200 and prints the node npub and a ready-to-run fedai infer command', async () => {
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect(banner).toMatch(/npub1[0-9a-z]{58}/);
    expect(banner).toContain('npm run fedai -- infer --node');
    expect(statSync(path.join(dataDir, 'dev', 'node.nsec')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dataDir, 'dev', 'router.nsec')).mode & 0o777).toBe(0o600);
  });

  it.each([[false], [true]])('the printed command gives a verified signed answer (stream=%s)', async (stream) => {
    const line = banner.split('\n').find((l) => l.includes('npm run fedai -- infer') && l.includes('--stream') === stream)!;
    // `npm run fedai -- <args>` is `node --import ./scripts/register-ts.mjs supervisor/cli/fedai.ts <args>`
    const args = line.trim().replace(/^npm run fedai -- /, '').match(/"[^"]*"|\S+/g)!.map((a) => a.replace(/^"|"$/g, ''));
    const fedai = pkg.scripts.fedai!.split(' ').slice(1);
    for (;;) {
      const st = (await (await fetch(`${url}/status`)).json()) as { ready: boolean };
      if (st.ready) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const r = await execa(process.execPath, [...fedai, ...args, '--data-dir', dataDir], { cwd: REPO, reject: false, env: { PATH: process.env.PATH! }, extendEnv: false });
    expect(r.stderr).toMatch(/verified: response and metering signed by npub1/);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim().length).toBeGreaterThan(0);
  });

  it('stops gracefully on SIGTERM', async () => {
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(0);
  });
});
