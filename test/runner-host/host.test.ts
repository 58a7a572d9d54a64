/**
 * The runner host, driven over real stdio: each test spawns runner-host/main.ts (mock adapter) as a
 * child process and speaks the protocol to it with vscode-jsonrpc.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { PassThrough } from 'node:stream';
import {
  CancellationTokenSource,
  createMessageConnection,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-jsonrpc/node';
import { serveRunner } from '../../runner-host/host.js';
import { createAdapter } from '../../runner-host/adapters/mock.js';
import { RunnerClient } from '../../supervisor/runners/conformance/runner-client.js';
import { runnerHostCommand } from '../../supervisor/runners/runner-command.js';
import type { InferResult, InitializeResult } from '../../supervisor/protocol/runner-protocol.js';

const T = 15_000;
const clients: RunnerClient[] = [];

function start(env: Record<string, string> = {}): RunnerClient {
  const c = new RunnerClient(runnerHostCommand(), { env: { FEDAI_ADAPTER: 'mock', ...env } });
  clients.push(c);
  return c;
}

const INIT = { protocolVersion: '1.0', supervisor: { name: 'test', version: '0' }, runnerId: 'host-test-0' };

async function started(env: Record<string, string> = {}): Promise<RunnerClient> {
  const c = start(env);
  await c.request<InitializeResult>('initialize', INIT, T);
  return c;
}

function req(over: Record<string, unknown> = {}) {
  return { requestId: 'req-1', modelId: 'mock-model', prompt: 'Tell me about the sea.', maxTokens: 64, ...over };
}

async function rpcError(p: Promise<unknown>): Promise<ResponseError<{ code?: string; details?: string[]; usage?: { inputTokens: number; outputTokens: number } }>> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ResponseError) return err;
    throw err;
  }
  throw new Error('expected a JSON-RPC error, got a result');
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.kill()));
});

describe('runner host: lifecycle', () => {
  it('refuses methods before initialize, then answers the handshake', async () => {
    const c = start();
    const early = await rpcError(c.request('listModels', undefined, T));
    expect(early.data?.code).toBe('runner-protocol-error');
    const init = await c.request<InitializeResult>('initialize', INIT, T);
    expect(init).toEqual({
      protocolVersion: '1.0',
      runner: { name: 'mock', version: expect.any(String) },
      models: [{ id: 'mock-model', contextWindow: 4096, maxTokens: 4096, family: 'mock' }],
      limits: { maxParallel: 16 },
      capabilities: { streaming: true, estimate: true, cancellation: true },
    });
    const again = await rpcError(c.request('initialize', INIT, T));
    expect(again.data?.code).toBe('runner-protocol-error');
  });

  it('refuses an incompatible major version with protocol-version-mismatch and stays uninitialized', async () => {
    const c = start();
    const e = await rpcError(c.request('initialize', { ...INIT, protocolVersion: '2.0' }, T));
    expect(e.code).toBe(-32015);
    expect(e.data?.code).toBe('protocol-version-mismatch');
    expect((await rpcError(c.request('health', undefined, T))).data?.code).toBe('runner-protocol-error');
    // a compatible minor is accepted
    await expect(c.request('initialize', { ...INIT, protocolVersion: '1.7' }, T)).resolves.toMatchObject({ protocolVersion: '1.0' });
  });

  it('shutdown answers null, refuses further work, and exit ends the process with code 0', async () => {
    const c = await started();
    await expect(c.request('shutdown', undefined, T)).resolves.toBeNull();
    const e = await rpcError(c.request('infer', { request: req() }, T));
    expect(e.data?.code).toBe('node-draining');
    await c.conn.sendNotification('exit');
    expect(await c.waitExit(T)).toEqual({ code: 0, signal: null });
  });

  it('exits when stdin closes, even with a stream in flight', async () => {
    const c = await started({ FEDAI_MOCK_TOKEN_DELAY_MS: '500' });
    const inflight = c.request('infer', { request: req(), stream: true, streamId: 's-eof' }, T).catch(() => 'gone');
    const t0 = Date.now();
    while (c.chunks.length === 0 && Date.now() - t0 < T) await new Promise((r) => setTimeout(r, 10));
    expect(c.chunks.length).toBeGreaterThan(0);
    c.proc.stdin!.end();
    const exit = await c.waitExit(5000);
    expect(exit).toEqual({ code: 0, signal: null });
    await inflight;
  });

  it('exits when stdin closes before initialize', async () => {
    const c = start();
    await new Promise((r) => setTimeout(r, 200));
    c.proc.stdin!.end();
    expect(await c.waitExit(T)).toEqual({ code: 0, signal: null });
  });
});

describe('runner host: methods', () => {
  it('infer echoes the requestId and reports integer usage; health is deep and ok', async () => {
    const c = await started();
    const r = await c.request<InferResult>('infer', { request: req({ requestId: 'abc-123' }), traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }, T);
    expect(r.requestId).toBe('abc-123');
    expect(r.modelId).toBe('mock-model');
    expect(Number.isInteger(r.usage.inputTokens) && Number.isInteger(r.usage.outputTokens)).toBe(true);
    expect(r.usage.outputTokens).toBe(r.output.split(' ').length);
    expect(c.chunks).toHaveLength(0);
    const h = await c.request<{ ok: boolean; loopLatencyMs: number }>('health', undefined, T);
    expect(h.ok).toBe(true);
    expect(typeof h.loopLatencyMs).toBe('number');
    const est = await c.request<{ inputTokens: number; exact: boolean }>('estimate', { request: req() }, T);
    expect(est).toMatchObject({ inputTokens: r.usage.inputTokens, exact: false, outputTokensMax: 64 });
  });

  it('streams chunks 0..n-1 before the result; their concatenation is the output', async () => {
    const c = await started({ FEDAI_MOCK_TOKEN_DELAY_MS: '1' });
    const r = await c.request<InferResult>('infer', { request: req(), stream: true, streamId: 'st-1' }, T);
    const seqAtResult = c.seq;
    await new Promise((res) => setTimeout(res, 50));
    expect(c.chunks.length).toBe(r.usage.outputTokens);
    expect(c.chunks.every((ch) => ch.seq < seqAtResult && ch.streamId === 'st-1')).toBe(true);
    expect(c.chunks.map((ch) => ch.index)).toEqual([...Array(c.chunks.length).keys()]);
    expect(c.chunks.map((ch) => ch.delta).join('')).toBe(r.output);
  });

  it('validates params: -32602 with data.code invalid-params and value-free details', async () => {
    const c = await started();
    const e = await rpcError(c.request('infer', { request: req({ maxTokens: 'CANARY-VALUE' }) }, T));
    expect(e.code).toBe(-32602);
    expect(e.data?.code).toBe('invalid-params');
    expect(e.data?.details).toEqual(expect.arrayContaining([expect.stringContaining('/request/maxTokens')]));
    expect(JSON.stringify(e.data)).not.toContain('CANARY-VALUE');
    const e2 = await rpcError(c.request('infer', { request: req(), stream: true }, T));
    expect(e2.data?.code).toBe('invalid-params');
    const e3 = await rpcError(c.request('infer', [req()], T));
    expect(e3.code).toBe(-32602);
    const e4 = await rpcError(c.request('estimate', { request: { requestId: 'x' } }, T));
    expect(e4.data?.code).toBe('invalid-params');
  });

  it('answers unknown methods with -32601 method-not-found', async () => {
    const c = await started();
    const e = await rpcError(c.request('fedai/bogus', {}, T));
    expect(e.code).toBe(-32601);
    expect(e.data?.code).toBe('method-not-found');
  });

  it('caps parallel inferences at maxParallel: the excess gets capacity-exhausted, a freed slot is reusable', async () => {
    const c = await started({ FEDAI_MAX_PARALLEL: '2', FEDAI_MOCK_TOKEN_DELAY_MS: '40' });
    const calls = [1, 2, 3].map((i) =>
      c.request<InferResult>('infer', { request: req({ requestId: `cap-${i}` }) }, T).then(
        (r) => ({ ok: true as const, r }),
        (e: unknown) => ({ ok: false as const, e }),
      ),
    );
    const out = await Promise.all(calls);
    const failed = out.filter((o) => !o.ok);
    expect(out.filter((o) => o.ok)).toHaveLength(2);
    expect(failed).toHaveLength(1);
    const e = (failed[0] as { e: ResponseError<{ code: string }> }).e;
    expect(e).toBeInstanceOf(ResponseError);
    expect(e.code).toBe(-32005);
    expect(e.data?.code).toBe('capacity-exhausted');
    await expect(c.request('infer', { request: req({ requestId: 'cap-4' }) }, T)).resolves.toMatchObject({ requestId: 'cap-4' });
  });
});

describe('runner host: cancellation, deadlines and errors', () => {
  it('$/cancelRequest ends the stream with -32800 and partial usage equal to the chunks sent', async () => {
    const c = await started({ FEDAI_MOCK_TOKEN_DELAY_MS: '30' });
    const cts = new CancellationTokenSource();
    c.onChunk = () => {
      if (c.chunks.length >= 3) cts.cancel();
    };
    const e = await rpcError(c.request('infer', { request: req({ maxTokens: 4096 }), stream: true, streamId: 'cx' }, T, cts.token));
    expect(e.code).toBe(-32800);
    expect(e.data?.code).toBe('request-cancelled');
    const usage = e.data!.usage!;
    expect(usage.inputTokens).toBeGreaterThan(0);
    expect(usage.outputTokens).toBeGreaterThanOrEqual(3);
    expect(usage.outputTokens).toBeLessThan(16);
    await new Promise((r) => setTimeout(r, 150));
    expect(c.chunks).toHaveLength(usage.outputTokens);
    // the runner is still healthy and serves the next call
    await expect(c.request('infer', { request: req({ requestId: 'after' }) }, T)).resolves.toMatchObject({ requestId: 'after' });
  });

  it('a passed deadlineMs ends the call with runner-timeout and partial usage', async () => {
    const c = await started({ FEDAI_MOCK_TOKEN_DELAY_MS: '50' });
    const e = await rpcError(c.request('infer', { request: req(), deadlineMs: Date.now() + 200 }, T));
    expect(e.data?.code).toBe('runner-timeout');
    expect(e.code).toBe(-32007);
    expect(e.data?.usage?.outputTokens).toBeLessThan(16);
  });

  it('maps an AdapterError to its catalogue rpc code with usage', async () => {
    const c = await started({ FEDAI_MOCK_FAIL_EVERY: '1' });
    const e = await rpcError(c.request('infer', { request: req() }, T));
    expect(e.code).toBe(-32014);
    expect(e.data).toMatchObject({ code: 'backend-error', usage: { inputTokens: expect.any(Number), outputTokens: 0 } });
  });

  it('turns an unexpected error into runner-error without its message, in the answer and on stderr', async () => {
    const canary = 'CANARY-PROMPT-7d1e9a';
    const c = await started({ FEDAI_MOCK_FAIL_EVERY: '1', FEDAI_MOCK_FAIL_KIND: 'unexpected' });
    const e = await rpcError(c.request('infer', { request: req({ prompt: `secret ${canary} text` }) }, T));
    expect(e.code).toBe(-32603);
    expect(e.data?.code).toBe('runner-error');
    expect(JSON.stringify({ m: e.message, d: e.data })).not.toContain(canary);
    c.proc.stdin!.end();
    await c.waitExit(T);
    await c.kill();
    expect(c.stderr).toContain('unexpected error');
    expect(c.stderr).not.toContain(canary);
  });
});

describe('runner-host/main.ts', () => {
  it('keeps console output off stdout: only well-formed frames reach the supervisor', async () => {
    const c = await started({ FEDAI_MOCK_CONSOLE_NOISE: '1' });
    await c.request('infer', { request: req() }, T);
    await c.request('shutdown', undefined, T);
    await c.conn.sendNotification('exit');
    expect((await c.waitExit(T))?.code).toBe(0);
    await c.kill();
    expect(c.frames.issues).toEqual([]);
    expect(c.frames.frames).toBeGreaterThanOrEqual(3);
    expect(c.stderr).toContain('stray console output in infer');
    expect(c.stderr).toContain('stray direct stdout write in infer');
  });

  it('exits 1 with a clear message for an unknown adapter', async () => {
    const c = start({ FEDAI_ADAPTER: 'no-such-adapter' });
    expect((await c.waitExit(T))?.code).toBe(1);
    await c.kill();
    expect(c.stderr).toContain('unknown adapter');
  });

  it('exits 1 when the adapter fails to start', async () => {
    const c = start({ FEDAI_MOCK_FAIL_START: '1' });
    expect((await c.waitExit(T))?.code).toBe(1);
    await c.kill();
    expect(c.stderr).toContain('runner failed to start');
  });
});

describe('serveRunner (in process, on given streams)', () => {
  it('serves on the streams it is given and resolves when its input ends', async () => {
    const toRunner = new PassThrough();
    const fromRunner = new PassThrough();
    const served = serveRunner(createAdapter({}), { input: toRunner, output: fromRunner });
    const conn = createMessageConnection(new StreamMessageReader(fromRunner), new StreamMessageWriter(toRunner));
    conn.listen();
    try {
      await expect(conn.sendRequest('initialize', INIT)).resolves.toMatchObject({ runner: { name: 'mock' } });
      const r = await conn.sendRequest<InferResult>('infer', { request: req() });
      expect(r.requestId).toBe('req-1');
      toRunner.end();
      await expect(served).resolves.toBeUndefined();
    } finally {
      conn.dispose();
    }
  });
});
