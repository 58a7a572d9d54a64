/** Starts `fedai-node serve` as a child process on a free loopback port with a temp data dir. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseIdentity, type Identity } from '../../supervisor/crypto/keys.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface NodeUnderTest {
  url: string;
  pid: number;
  router: Identity;
  nodeNpub: string;
  dataDir: string;
  stop(): Promise<void>;
}

export async function startNode(env: Record<string, string> = {}): Promise<NodeUnderTest> {
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fedai-bench-'));
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', path.join(REPO, 'scripts/register-ts.mjs'), path.join(REPO, 'supervisor/cli/fedai-node.ts'), 'serve'],
    {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_PORT: String(port), NODE_DATA_DIR: dataDir, LOG_LEVEL: 'warn', NODE_ENV: 'test', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`node exited ${child.exitCode}: ${stderr.slice(-2000)}`);
    try {
      const r = await fetch(`${url}/ready`);
      if (r.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`node not ready in 30 s: ${stderr.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const status = (await (await fetch(`${url}/status`)).json()) as { npub: string };
  const router = parseIdentity(readFileSync(path.join(dataDir, 'dev', 'router.nsec'), 'utf8'));
  return {
    url,
    pid: child.pid!,
    router,
    nodeNpub: status.npub,
    dataDir,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}
