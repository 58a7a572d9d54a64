/**
 * The mock adapter: deterministic output from token counts only (never an echo of the prompt, upstream
 * defect 15), streaming deltas that concatenate to the output, cancellation with partial usage, and the
 * same guarantees end to end through the runner host as a child process.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { ResponseError } from 'vscode-jsonrpc/node';
import { estimateTokens, AdapterError } from '../../runner-host/adapter.js';
import { createAdapter, MOCK_VOCABULARY, mockOutput, mockOutputLength } from '../../runner-host/adapters/mock.js';
import { loadAdapter } from '../../runner-host/adapters/index.js';
import { RunnerClient } from '../../supervisor/runners/conformance/runner-client.js';
import { runnerHostCommand } from '../../supervisor/runners/runner-command.js';
import type { InferResult, RunnerInferRequest } from '../../supervisor/protocol/runner-protocol.js';

const CANARY = 'zq-CANARY-4f2b9c-qz';

function req(over: Partial<RunnerInferRequest> = {}): RunnerInferRequest {
  return { requestId: 'm-1', modelId: 'mock-model', prompt: 'What is the capital of France?', maxTokens: 256, ...over };
}

const never = new AbortController().signal;

describe('mock adapter (in process)', () => {
  it('advertises mock-model (or FEDAI_MODEL_ID) with a 4096 window and reads FEDAI_MAX_PARALLEL', async () => {
    const a = createAdapter({});
    expect(await a.listModels()).toEqual([{ id: 'mock-model', contextWindow: 4096, maxTokens: 4096, family: 'mock' }]);
    expect(a.maxParallel()).toBe(16);
    const b = createAdapter({ FEDAI_MODEL_ID: 'tiny-1', FEDAI_MAX_PARALLEL: '3' });
    expect((await b.listModels())[0].id).toBe('tiny-1');
    expect(b.maxParallel()).toBe(3);
    expect(() => createAdapter({ FEDAI_MAX_PARALLEL: 'lots' })).toThrow(/FEDAI_MAX_PARALLEL/);
  });

  it('is deterministic and derives its output from token counts only', async () => {
    const a = createAdapter({});
    const r1 = await a.infer(req(), { signal: never });
    const r2 = await a.infer(req({ requestId: 'm-2' }), { signal: never });
    expect(r2.output).toBe(r1.output);
    const inputTokens = estimateTokens(req().prompt);
    expect(r1.usage).toEqual({ inputTokens, outputTokens: mockOutputLength(inputTokens, 256) });
    expect(r1.output).toBe(mockOutput(inputTokens, 256));
    expect(r1.output.split(' ').every((w) => MOCK_VOCABULARY.includes(w))).toBe(true);
    // Same length prompt, different text: same output (nothing of the text reaches the output).
    const same = await a.infer(req({ prompt: 'x'.repeat(req().prompt.length) }), { signal: never });
    expect(same.output).toBe(r1.output);
    expect(r1.finishReason).toBe('stop');
    const capped = await a.infer(req({ maxTokens: 3 }), { signal: never });
    expect(capped.usage.outputTokens).toBe(3);
    expect(capped.finishReason).toBe('length');
  });

  it('never echoes the prompt, for prompts of many lengths', async () => {
    const a = createAdapter({});
    for (let n = 0; n < 40; n++) {
      const prompt = `${CANARY} ${'alpha bravo '.repeat(n)}${CANARY}`;
      const r = await a.infer(req({ prompt }), { signal: never });
      expect(r.output).not.toContain(CANARY);
      expect(r.output).not.toContain('CANARY');
    }
  });

  it('streams one word per delta; the deltas concatenate to the output', async () => {
    const a = createAdapter({});
    const deltas: string[] = [];
    const r = await a.infer(req(), { signal: never, onDelta: (d) => deltas.push(d) });
    expect(deltas.length).toBe(r.usage.outputTokens);
    expect(deltas.join('')).toBe(r.output);
    expect(deltas.slice(1).every((d) => d.startsWith(' '))).toBe(true);
  });

  it('stops on abort and throws request-cancelled with partial usage', async () => {
    const a = createAdapter({ FEDAI_MOCK_TOKEN_DELAY_MS: '5' });
    const ac = new AbortController();
    const deltas: string[] = [];
    const p = a.infer(req(), {
      signal: ac.signal,
      onDelta: (d) => {
        deltas.push(d);
        if (deltas.length === 4) ac.abort();
      },
    });
    await expect(p).rejects.toBeInstanceOf(AdapterError);
    const err = (await p.catch((e: unknown) => e)) as AdapterError;
    expect(err.code).toBe('request-cancelled');
    expect(err.usage).toEqual({ inputTokens: estimateTokens(req().prompt), outputTokens: 4 });
  });

  it('yields to the event loop between tokens even without a delay, so an abort lands mid-stream', async () => {
    const a = createAdapter({});
    const ac = new AbortController();
    let seen = 0;
    const p = a.infer(req(), { signal: ac.signal, onDelta: () => seen++ });
    setImmediate(() => ac.abort());
    const err = await p.then(
      () => undefined,
      (e: unknown) => e as AdapterError,
    );
    expect(err?.code).toBe('request-cancelled');
    expect(err?.usage?.outputTokens).toBe(seen);
    expect(seen).toBeLessThan(mockOutputLength(estimateTokens(req().prompt), 256));
  });

  it('estimates with the chars/4 rule, refuses unknown models, and is healthy', async () => {
    const a = createAdapter({ FEDAI_MOCK_TOKEN_DELAY_MS: '10' });
    const e = await a.estimate(req({ maxTokens: 100 }));
    expect(e).toEqual({
      inputTokens: estimateTokens(req().prompt),
      exact: false,
      outputTokensMax: 100,
      latencyEstimateMs: mockOutputLength(estimateTokens(req().prompt), 100) * 10,
    });
    await expect(a.infer(req({ modelId: 'other' }), { signal: never })).rejects.toMatchObject({ code: 'model-not-found' });
    await expect(a.health()).resolves.toMatchObject({ ok: true });
  });

  it('loadAdapter finds mock and refuses unknown names clearly', async () => {
    const a = await loadAdapter('mock', {});
    expect(a.name).toBe('mock');
    await expect(loadAdapter('nope', {})).rejects.toThrow(/unknown adapter "nope".*mock/);
    await expect(loadAdapter('__proto__', {})).rejects.toThrow(/unknown adapter/);
  });
});

describe('mock runner through the host (child process)', () => {
  let client: RunnerClient | undefined;
  afterEach(async () => {
    await client?.kill();
    client = undefined;
  });

  it('never echoes a canary prompt in the output, the chunks or stderr', async () => {
    client = new RunnerClient(runnerHostCommand(), { env: { FEDAI_ADAPTER: 'mock', FEDAI_MOCK_TOKEN_DELAY_MS: '1' } });
    await client.request('initialize', { protocolVersion: '1.0', supervisor: { name: 't', version: '0' }, runnerId: 'mock-canary' }, 15_000);
    const prompt = `Please repeat exactly: ${CANARY}. Again: ${CANARY}`;
    const plain = await client.request<InferResult>('infer', { request: req({ prompt }) }, 15_000);
    const streamed = await client.request<InferResult>('infer', { request: req({ prompt, requestId: 'm-2' }), stream: true, streamId: 's' }, 15_000);
    const bad = await client.request('infer', { request: { ...req({ prompt }), maxTokens: -1 } }, 15_000).catch((e: unknown) => e);
    expect(plain.output).not.toContain(CANARY);
    expect(streamed.output).toBe(plain.output);
    expect(client.chunks.map((c) => c.delta).join('')).toBe(streamed.output);
    expect(bad).toBeInstanceOf(ResponseError);
    expect((bad as ResponseError<{ code?: string }>).data?.code).toBe('invalid-params');
    expect(JSON.stringify(bad)).not.toContain(CANARY);
    expect((bad as ResponseError<unknown>).message).not.toContain(CANARY); // message is not an own enumerable field: stringify skips it
    client.proc.stdin!.end();
    expect((await client.waitExit(15_000))?.code).toBe(0);
    await client.kill();
    expect(client.stderr.length).toBeGreaterThan(0);
    expect(client.stderr).not.toContain(CANARY);
    expect(client.stderr).not.toContain('CANARY');
  });
});
