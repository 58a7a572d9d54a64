/**
 * Entry point of the built-in runner host: `node [--import scripts/register-ts.mjs] runner-host/main.{ts,js}`.
 * Reads FEDAI_ADAPTER (default "mock"), starts the adapter and serves the runner protocol on stdio.
 * Exit codes: 0 after `exit` or when stdin closes; 1 when the adapter cannot be loaded or started.
 *
 * Stdout carries protocol frames only. Before anything else runs, every console method and
 * process.stdout.write itself are pointed at stderr; the host writes frames through a private stream
 * bound to the real stdout, so a stray print from any library can never corrupt the frame stream.
 */
import { Writable } from 'node:stream';
import { format } from 'node:util';

for (const m of ['log', 'info', 'debug', 'warn', 'error', 'trace'] as const) {
  console[m] = (...args: unknown[]) => {
    process.stderr.write(`${format(...args)}\n`);
  };
}

// Even direct process.stdout.write() calls go to stderr. Only `frames` (handed to the host) reaches fd 1.
const stdoutWrite = process.stdout.write.bind(process.stdout) as (chunk: Uint8Array | string, cb: (err?: Error | null) => void) => boolean;
const frames = new Writable({
  write(chunk: Buffer, _enc, cb) {
    stdoutWrite(chunk, (err) => cb(err ?? null));
  },
});
process.stdout.on('error', (err) => frames.destroy(err));
process.stdout.write = ((chunk: Uint8Array | string, ...rest: unknown[]) =>
  (process.stderr.write as (...a: unknown[]) => boolean)(chunk, ...rest)) as typeof process.stdout.write;

function logLine(level: string, msg: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ level, time: new Date().toISOString(), name: 'runner-host', msg, ...fields })}\n`);
}

async function main(): Promise<number> {
  // Imported after the console redirect: nothing they do at load time can reach stdout.
  const { loadAdapter } = await import('./adapters/index.js');
  const { serveRunner } = await import('./host.js');
  const name = process.env.FEDAI_ADAPTER && process.env.FEDAI_ADAPTER.length > 0 ? process.env.FEDAI_ADAPTER : 'mock';
  let adapter;
  try {
    adapter = await loadAdapter(name, process.env);
    await adapter.start();
  } catch (err) {
    const e = err as Error & { code?: unknown };
    // The adapter's own message is written by our code (no prompt exists yet at start-up).
    logLine('error', 'runner failed to start', { adapter: name, error: e?.message, code: typeof e?.code === 'string' ? e.code : undefined });
    return 1;
  }
  await serveRunner(adapter, { input: process.stdin, output: frames });
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    logLine('error', 'runner host crashed', { errorName: err instanceof Error ? err.name : typeof err });
    process.exit(1);
  },
);
