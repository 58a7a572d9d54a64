/**
 * The reference Python runner (runner-host/examples/python/fedai_runner.py): passes the conformance
 * kit, frames bytes exactly, and behaves under cancellation, capacity limits, bad input and canaries.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { CancellationTokenSource, ResponseError } from 'vscode-jsonrpc/node';
import { CHECK_NAMES, checkRunner, formatCheckResults } from '../../supervisor/runners/conformance/check-runner.js';
import { RunnerClient } from '../../supervisor/runners/conformance/runner-client.js';
import { pythonRunnerCommand } from '../../supervisor/runners/runner-command.js';
import type { InferResult, InitializeResult } from '../../supervisor/protocol/runner-protocol.js';

const T = 15_000;
const INIT = { protocolVersion: '1.0', supervisor: { name: 'test', version: '0' }, runnerId: 'py-0' };
const clients: RunnerClient[] = [];
const raw: ChildProcessWithoutNullStreams[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.kill()));
  for (const p of raw.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

async function started(env: Record<string, string> = {}): Promise<{ c: RunnerClient; init: InitializeResult }> {
  const c = new RunnerClient(pythonRunnerCommand(), { env });
  clients.push(c);
  const init = await c.request<InitializeResult>('initialize', INIT, T);
  return { c, init };
}

function req(modelId: string, over: Record<string, unknown> = {}) {
  return { requestId: 'py-req-1', modelId, prompt: 'Summarise the history of bridges.', maxTokens: 4096, ...over };
}

function frame(msg: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(msg), 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]);
}

/** Spawns the runner without any JSON-RPC library, writes `input` and collects stdout until exit. */
async function rawExchange(input: Buffer, env: Record<string, string> = {}): Promise<{ stdout: Buffer; code: number | null }> {
  const [file, ...args] = pythonRunnerCommand();
  const p = spawn(file, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: 'pipe' });
  raw.push(p);
  const chunks: Buffer[] = [];
  p.stdout.on('data', (b: Buffer) => chunks.push(b));
  p.stderr.resume();
  const exited = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
  p.stdin.end(input);
  const code = await exited;
  return { stdout: Buffer.concat(chunks), code };
}

/** Splits a stdout byte stream into frame bodies, failing on anything that is not a frame. */
function parseFrames(buf: Buffer): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  let i = 0;
  while (i < buf.length) {
    const end = buf.indexOf('\r\n\r\n', i, 'latin1');
    if (end < 0) throw new Error(`stray bytes at ${i}`);
    const m = /^Content-Length: (\d+)$/.exec(buf.subarray(i, end).toString('latin1'));
    if (!m) throw new Error(`bad header at ${i}: ${buf.subarray(i, end).toString('latin1')}`);
    const len = Number(m[1]);
    const body = buf.subarray(end + 4, end + 4 + len);
    if (body.length !== len) throw new Error('truncated frame');
    out.push(JSON.parse(body.toString('utf8')) as Record<string, unknown>);
    i = end + 4 + len;
  }
  return out;
}

describe('python reference runner', () => {
  it('passes every conformance check', async () => {
    const results = await checkRunner(pythonRunnerCommand(), { env: { FEDAI_MOCK_TOKEN_DELAY_MS: '10' }, timeoutMs: T });
    expect(results.map((r) => r.name)).toEqual([...CHECK_NAMES]);
    expect(formatCheckResults(results.filter((r) => !r.ok))).toBe('');
  }, 60_000);

  it('frames exactly: Content-Length counts UTF-8 bytes; answers on EOF; exits 0', async () => {
    const input = Buffer.concat([
      frame({ jsonrpc: '2.0', id: 1, method: 'initialize', params: INIT }),
      frame({ jsonrpc: '2.0', id: 2, method: 'listModels' }),
    ]);
    const { stdout, code } = await rawExchange(input, { FEDAI_MODEL_ID: 'modèle-π-世界' });
    expect(code).toBe(0);
    const frames = parseFrames(stdout);
    const byId = new Map(frames.filter((f) => 'id' in f).map((f) => [f.id, f]));
    expect((byId.get(1)?.result as InitializeResult).models[0].id).toBe('modèle-π-世界');
    expect(byId.get(2)?.result).toEqual({ models: [{ id: 'modèle-π-世界', contextWindow: 4096, maxTokens: 4096, family: 'reference' }] });
    expect(frames.some((f) => f.method === 'log')).toBe(true);
  });

  it('answers a frame that is not JSON with -32700 and keeps serving', async () => {
    const junk = Buffer.from('{not json', 'utf8');
    const input = Buffer.concat([
      Buffer.from(`Content-Length: ${junk.length}\r\n\r\n`, 'ascii'),
      junk,
      frame({ jsonrpc: '2.0', id: 7, method: 'initialize', params: INIT }),
    ]);
    const frames = parseFrames((await rawExchange(input)).stdout);
    expect(frames.find((f) => f.id === null)?.error).toMatchObject({ code: -32700 });
    expect(frames.find((f) => f.id === 7)?.result).toMatchObject({ protocolVersion: '1.0' });
  });

  it('cancels a running stream: -32800 with partial usage equal to the chunks sent', async () => {
    const { c, init } = await started({ FEDAI_MOCK_TOKEN_DELAY_MS: '30' });
    const cts = new CancellationTokenSource();
    c.onChunk = () => {
      if (c.chunks.length >= 2) cts.cancel();
    };
    const err = await c.request('infer', { request: req(init.models[0].id), stream: true, streamId: 'py-s' }, T, cts.token).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResponseError);
    const e = err as ResponseError<{ code: string; usage: { inputTokens: number; outputTokens: number } }>;
    expect(e.code).toBe(-32800);
    expect(e.data!.code).toBe('request-cancelled');
    expect(e.data!.usage.outputTokens).toBeGreaterThanOrEqual(2);
    expect(e.data!.usage.outputTokens).toBeLessThan(16);
    await new Promise((r) => setTimeout(r, 150));
    expect(c.chunks).toHaveLength(e.data!.usage.outputTokens);
  });

  it('refuses work beyond maxParallel with capacity-exhausted', async () => {
    const { c, init } = await started({ FEDAI_MAX_PARALLEL: '1', FEDAI_MOCK_TOKEN_DELAY_MS: '20' });
    expect(init.limits.maxParallel).toBe(1);
    const first = c.request<InferResult>('infer', { request: req(init.models[0].id) }, T);
    const second = await c.request('infer', { request: req(init.models[0].id, { requestId: 'py-req-2' }) }, T).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(ResponseError);
    expect((second as ResponseError<{ code: string }>).data).toMatchObject({ code: 'capacity-exhausted' });
    expect((second as ResponseError<unknown>).code).toBe(-32005);
    await expect(first).resolves.toMatchObject({ requestId: 'py-req-1' });
  });

  it('validates params and refuses unknown methods', async () => {
    const { c, init } = await started();
    const bad = await c.request('infer', { request: req(init.models[0].id, { maxTokens: 0 }) }, T).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: -32602, data: { code: 'invalid-params', details: [expect.stringContaining('/request/maxTokens')] } });
    const unknown = await c.request('nope', {}, T).catch((e: unknown) => e);
    expect(unknown).toMatchObject({ code: -32601, data: { code: 'method-not-found' } });
    const h = await c.request<{ ok: boolean; loopLatencyMs: number }>('health', undefined, T);
    expect(h.ok).toBe(true);
    expect(typeof h.loopLatencyMs).toBe('number');
  });

  it('never echoes a canary prompt in its output or on stderr', async () => {
    const canary = 'py-CANARY-91ac3e';
    const { c, init } = await started({ FEDAI_MOCK_TOKEN_DELAY_MS: '0' });
    const r = await c.request<InferResult>('infer', { request: req(init.models[0].id, { prompt: `say ${canary} ${canary}`, maxTokens: 64 }), stream: true, streamId: 'k' }, T);
    expect(r.output).not.toContain(canary);
    expect(c.chunks.map((x) => x.delta).join('')).toBe(r.output);
    c.proc.stdin!.end();
    expect((await c.waitExit(T))?.code).toBe(0);
    await c.kill();
    expect(c.stderr).not.toContain(canary);
  });
});
