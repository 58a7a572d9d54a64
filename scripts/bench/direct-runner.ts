/** JSON-RPC round trips straight to a runner over stdio (no HTTP, no signing): the floor. */
import { spawn } from 'node:child_process';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';
import { runnerHostCommand } from '../../supervisor/runners/runner-command.js';
import { RUNNER_PROTOCOL_VERSION, type InferResult } from '../../supervisor/protocol/runner-protocol.js';
import { summarize, type Summary } from './stats.js';

export async function directRunnerBench(opts: { concurrency: number; seconds: number; prompt: string; maxTokens: number }): Promise<Summary & { spawnToReadyMs: number }> {
  const [file, ...args] = runnerHostCommand();
  const t0 = performance.now();
  const child = spawn(file!, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FEDAI_ADAPTER: 'mock' }, stdio: ['pipe', 'pipe', 'ignore'] });
  const conn = createMessageConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
  conn.listen();
  await conn.sendRequest('initialize', { protocolVersion: RUNNER_PROTOCOL_VERSION, supervisor: { name: 'bench', version: '0' }, runnerId: 'bench' });
  const spawnToReadyMs = performance.now() - t0;
  const latencies: number[] = [];
  const deadline = performance.now() + opts.seconds * 1000;
  let i = 0;
  const started = performance.now();
  const worker = async () => {
    while (performance.now() < deadline) {
      const s = performance.now();
      await conn.sendRequest<InferResult>('infer', {
        request: { requestId: `b-${i++}`, modelId: 'mock-model', prompt: opts.prompt, maxTokens: opts.maxTokens },
      });
      latencies.push(performance.now() - s);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const elapsed = performance.now() - started;
  conn.dispose();
  child.stdin!.end();
  child.kill('SIGTERM');
  return { ...summarize(latencies, elapsed), spawnToReadyMs };
}
