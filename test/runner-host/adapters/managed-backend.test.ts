import { afterEach, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { AdapterError } from '../../../runner-host/adapter.js';
import { ManagedBackend, parseCommandLine, pickFreePort } from '../../../runner-host/backend/managed-backend.js';
import { runnerHostCommand } from '../../../supervisor/runners/runner-command.js';
import { FAKES, pidAlive, stopProc, waitFor } from './helpers.js';

const FAKE = join(FAKES, 'fake-llama-cpp.mjs');
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

describe('managed backend', () => {
  test('parseCommandLine: JSON array or space-separated; bad values are invalid-params', () => {
    expect(parseCommandLine('["/bin/x", "--port", "{port}", "a b"]')).toEqual(['/bin/x', '--port', '{port}', 'a b']);
    expect(parseCommandLine('  /bin/x  --port {port} ')).toEqual(['/bin/x', '--port', '{port}']);
    for (const bad of ['[', '[]', '[1]', '   ']) {
      expect(() => parseCommandLine(bad)).toThrow(AdapterError);
    }
  });

  test('pickFreePort gives a bindable loopback port', async () => {
    const p = await pickFreePort();
    expect(p).toBeGreaterThan(0);
    expect(p).toBeLessThan(65536);
    const srv = net.createServer();
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(p, '127.0.0.1', resolve);
    });
    expect((srv.address() as net.AddressInfo).port).toBe(p);
    await new Promise((r) => srv.close(r));
  });

  test('waits through the loading phase; output is kept in a bounded buffer, never on our stdout', async () => {
    const m = new ManagedBackend({ command: [process.execPath, FAKE, '--port', '{port}', '--loading-ms', '300'], outputBufferBytes: 16 });
    cleanup.push(() => m.stop());
    await m.start();
    expect(m.state).toBe('ready');
    expect(m.outputTail().length).toBeLessThanOrEqual(16);
    const r = await fetch(`${m.url}/health`);
    expect(r.status).toBe(200);
    await m.stop();
    expect(m.state).toBe('stopped');
    expect(m.lastExitStatus?.code).toBe(134); // the fake exits like llama-server on SIGTERM
  });

  test('a backend that never becomes ready is killed at the start deadline', async () => {
    const m = new ManagedBackend({ command: [process.execPath, FAKE, '--port', '{port}', '--loading-ms', '60000'], startTimeoutMs: 500 });
    cleanup.push(() => m.stop());
    const e = await m.start().then(
      () => undefined,
      (err: unknown) => err as AdapterError,
    );
    expect(e?.code).toBe('backend-unavailable');
    expect(e?.details).toEqual(['backend-start-timeout', 'loading']);
    expect(m.pid).toEqual(expect.any(Number)); // it was spawned: the check below is about a real process
    expect(m.pid !== undefined && pidAlive(m.pid)).toBe(false);
  });

  test('a missing program is a start failure', async () => {
    const m = new ManagedBackend({ command: ['/nonexistent/llama-server', '--port', '{port}'], pdeathsig: false });
    const e = await m.start().then(
      () => undefined,
      (err: unknown) => err as AdapterError,
    );
    expect(e?.code).toBe('backend-unavailable');
    expect(e?.details?.[0]).toBe('backend-spawn-failed');
  });

  test('the backend dies with its runner even when the runner is SIGKILLed', async () => {
    const runner: ChildProcess = spawn(runnerHostCommand()[0], runnerHostCommand().slice(1), {
      env: { PATH: process.env.PATH, FEDAI_ADAPTER: 'llama_cpp', FEDAI_BACKEND_COMMAND: JSON.stringify([process.execPath, FAKE, '--port', '{port}']) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    runner.stdout?.resume();
    let stderr = '';
    runner.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    cleanup.push(() => stopProc(runner));
    // Only once the backend is serving (its start-up output is done) does the kill prove anything.
    await waitFor(() => stderr.includes('llama_cpp backend ready'), 20_000);
    let backend = 0;
    await waitFor(() => {
      backend = childrenOf(runner.pid!).find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('fake-llama-cpp')) ?? 0;
      return backend > 0;
    }, 20_000);
    expect(pidAlive(backend)).toBe(true);
    cleanup.push(async () => {
      if (pidAlive(backend)) process.kill(backend, 'SIGKILL');
    });
    runner.kill('SIGKILL');
    await waitFor(() => !pidAlive(backend), 10_000);
  });
});
