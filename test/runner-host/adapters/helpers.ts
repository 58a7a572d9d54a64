/** Test helpers: fake backends as real child processes, a test-only egress forward proxy on a Unix socket. */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const FAKES = join(REPO_ROOT, 'test/fixtures/backends');

export interface FakeBackend {
  port: number;
  url: string;
  proc: ChildProcess;
  stats(): Promise<Record<string, any>>;
  stop(): Promise<void>;
}

export async function startFake(script: string, args: string[] = []): Promise<FakeBackend> {
  const proc = spawn(process.execPath, [join(FAKES, script), '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stderr?.resume();
  const port = await new Promise<number>((res, rej) => {
    let buf = '';
    const onData = (b: Buffer): void => {
      buf += b.toString();
      const m = /listening (\d+)/.exec(buf);
      if (m) {
        proc.stdout?.off('data', onData);
        proc.stdout?.resume();
        res(Number(m[1]));
      }
    };
    proc.stdout?.on('data', onData);
    proc.once('exit', (c) => rej(new Error(`fake ${script} exited ${c}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    port,
    url,
    proc,
    stats: async () => (await (await fetch(`${url}/__fake/stats`)).json()) as Record<string, any>,
    stop: () => stopProc(proc),
  };
}

export function stopProc(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    proc.once('exit', () => r());
    proc.kill('SIGKILL');
  });
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill 0: check /proc state.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, stepMs = 25): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error('waitFor: condition not met in time');
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export interface TestProxy {
  socketPath: string;
  /** Request lines seen: "GET http://127.0.0.1:1234/health" or "CONNECT host:port". */
  seen: string[];
  /** CONNECT tunnels still open. */
  openTunnels(): number;
  close(): Promise<void>;
}

/**
 * A minimal forward proxy on a Unix socket, shaped like the supervisor's egress proxy contract
 * (supervisor/sandbox/launch-plan.ts): absolute-form plain-http requests are checked against
 * `allowed` (origins) and streamed through; CONNECT opens a TCP tunnel; refusals are
 * 403 {"error":"egress-not-allowed"}.
 */
export async function startTestProxy(allowed: string[]): Promise<TestProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'fedai-egress-'));
  const socketPath = join(dir, 'egress.sock');
  const seen: string[] = [];
  const refuse = (res: http.ServerResponse): void => {
    const b = JSON.stringify({ error: 'egress-not-allowed' });
    res.writeHead(403, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
    res.end(b);
  };
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      return refuse(res);
    }
    if (!allowed.includes(target.origin)) return refuse(res);
    const up = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: target.pathname + target.search, headers: req.headers, agent: false },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  const tunnels = new Set<net.Socket>();
  server.on('connect', (req, sock: net.Socket, head) => {
    seen.push(`CONNECT ${req.url}`);
    tunnels.add(sock);
    sock.on('close', () => tunnels.delete(sock));
    const [host, port] = String(req.url).split(':');
    if (!allowed.includes(`https://${req.url}`)) {
      const b = JSON.stringify({ error: 'egress-not-allowed' });
      sock.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: ${b.length}\r\n\r\n${b}`);
      return;
    }
    const up = net.connect(Number(port), host, () => {
      sock.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(sock);
      sock.pipe(up);
    });
    up.on('error', () => sock.destroy());
    sock.on('error', () => up.destroy());
    // Half-closed tunnels: once either side is fully closed, close the other (a paused, unpiped socket
    // would never read the client's EOF).
    up.on('close', () => {
      sock.end();
      sock.resume(); // keep reading so the client's EOF is seen
    });
    sock.on('close', () => up.destroy());
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  return {
    socketPath,
    seen,
    openTunnels: () => tunnels.size,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        for (const t of tunnels) t.destroy();
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          r();
        });
      }),
  };
}
