/**
 * RunnerManager against the real runner host with the mock adapter (runnerHostCommand()).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { FedaiError } from '../../supervisor/errors.js';
import { runnerHostCommand } from '../../supervisor/runners/runner-command.js';
import { mockOutput } from '../../runner-host/adapters/mock.js';
import { estimateTokens } from '../../runner-host/adapter.js';
import { isLive, makeManager, processesWithMarker, sentinelsOfThisProcess, waitFor, type Harness } from './helpers.js';

const REQ = { requestId: 'm-1', modelId: 'mock-model', prompt: 'PROMPT-SECRET-TEXT and more', maxTokens: 64 };
const expected = mockOutput(estimateTokens(REQ.prompt), REQ.maxTokens);

const harnesses: Harness[] = [];
function mock(opts: Parameters<typeof makeManager>[1] = {}): Harness {
  const h = makeManager(runnerHostCommand(), { name: 'mock', adapter: 'mock', ...opts });
  harnesses.push(h);
  return h;
}

async function cleanupAll(): Promise<void> {
  for (const h of harnesses.splice(0)) {
    await h.cleanup();
    await waitFor(() => processesWithMarker(h.marker).length === 0, 5000, 'no leftover runner processes');
  }
}

describe('RunnerManager with the mock runner', () => {
  let shared: Harness;
  beforeAll(async () => {
    shared = makeManager(runnerHostCommand(), { name: 'mock', adapter: 'mock', env: { FEDAI_MOCK_TOKEN_DELAY_MS: '40' } });
    await shared.manager.start();
  }, 30_000);
  afterAll(async () => {
    await shared.cleanup();
    await waitFor(() => processesWithMarker(shared.marker).length === 0, 5000, 'no leftover runner processes');
    await waitFor(() => sentinelsOfThisProcess().length === 0, 5000, 'no leftover sentinels');
  });
  afterEach(cleanupAll);

  it('becomes ready with the handshake models, limits and capabilities', () => {
    const m = shared.manager;
    expect(m.ready).toBe(true);
    const st = m.status();
    expect(st).toMatchObject({ name: 'mock', state: 'ready', restarts: 0, crashesInWindow: 0, inFlight: 0, queued: 0, maxParallel: 16 });
    expect(st.pid).toBeGreaterThan(1);
    expect(st.readySince).toBeLessThanOrEqual(Date.now());
    expect(m.listModels().map((x) => x.id)).toEqual(['mock-model']);
    expect(m.capabilities()).toEqual({ streaming: true, estimate: true, cancellation: true });
  });

  it('infers, and estimates', async () => {
    const r = await shared.manager.infer(REQ);
    expect(r.output).toBe(expected);
    expect(r.usage.inputTokens).toBe(estimateTokens(REQ.prompt));
    const e = await shared.manager.estimate(REQ);
    expect(e.inputTokens).toBe(estimateTokens(REQ.prompt));
  });

  it('streams chunks in order', async () => {
    const chunks: { index: number; delta: string }[] = [];
    const r = await shared.manager.infer(REQ, { stream: true, onChunk: (c) => chunks.push(c) });
    expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
    expect(chunks.map((c) => c.delta).join('')).toBe(r.output);
    expect(chunks.length).toBe(r.usage.outputTokens);
  });

  it('a client abort cancels the runner call: request-cancelled with partial usage, no restart', async () => {
    const ac = new AbortController();
    let n = 0;
    const p = shared.manager.infer(REQ, {
      stream: true,
      signal: ac.signal,
      onChunk: () => {
        if (++n === 3) ac.abort();
      },
    });
    const err = (await p.catch((e: unknown) => e)) as FedaiError;
    expect(err.code).toBe('request-cancelled');
    expect(err.usage?.outputTokens).toBeGreaterThanOrEqual(3);
    expect(err.usage!.outputTokens).toBeLessThan(expected.split(' ').length);
    expect(shared.manager.status()).toMatchObject({ state: 'ready', restarts: 0, inFlight: 0 });
  });

  it('a model the runner does not serve is the runner’s own error code', async () => {
    const err = (await shared.manager.infer({ ...REQ, modelId: 'nope' }).catch((e: unknown) => e)) as FedaiError;
    expect(err.code).toBe('model-not-found');
  });

  it('deadline → $/cancelRequest → runner-timeout with partial usage; a runner that settles is not killed', async () => {
    const h = mock({ config: { NODE_RUNNER_TIMEOUT_MS: '300', NODE_RUNNER_KILL_GRACE_MS: '5000' }, env: { FEDAI_MOCK_TOKEN_DELAY_MS: '100' } });
    const kills: string[] = [];
    h.manager.on('kill', (r: string) => kills.push(r));
    await h.manager.start();
    const pid = h.manager.status().pid;
    const err = (await h.manager.infer(REQ).catch((e: unknown) => e)) as FedaiError;
    expect(err.code).toBe('runner-timeout');
    expect(err.usage?.inputTokens).toBe(estimateTokens(REQ.prompt));
    expect(kills).toEqual([]);
    expect(h.manager.status()).toMatchObject({ state: 'ready', restarts: 0, pid, inFlight: 0 });
  });

  it('admission: maxParallel in flight, queueMax queued, then capacity-exhausted (429)', async () => {
    const h = mock({ config: { NODE_QUEUE_MAX: '1' }, env: { FEDAI_MAX_PARALLEL: '1', FEDAI_MOCK_TOKEN_DELAY_MS: '30' } });
    await h.manager.start();
    expect(h.manager.status().maxParallel).toBe(1);
    const a = h.manager.infer(REQ);
    const b = h.manager.infer({ ...REQ, requestId: 'm-2' });
    await waitFor(() => h.manager.status().inFlight === 1 && h.manager.status().queued === 1, 5000, 'one in flight, one queued');
    const c = (await h.manager.infer({ ...REQ, requestId: 'm-3' }).catch((e: unknown) => e)) as FedaiError;
    expect(c.code).toBe('capacity-exhausted');
    expect(c.status).toBe(429);
    expect((await a).output).toBe(expected);
    expect((await b).requestId).toBe('m-2');
  });

  it('a queued request honours its abort signal: request-cancelled, no usage, the in-flight one unaffected', async () => {
    const h = mock({ config: { NODE_QUEUE_MAX: '4' }, env: { FEDAI_MAX_PARALLEL: '1', FEDAI_MOCK_TOKEN_DELAY_MS: '30' } });
    await h.manager.start();
    const a = h.manager.infer(REQ);
    const ac = new AbortController();
    const b = h.manager.infer({ ...REQ, requestId: 'm-queued' }, { signal: ac.signal }).catch((e: unknown) => e as FedaiError);
    await waitFor(() => h.manager.status().queued === 1, 5000, 'queued');
    ac.abort();
    const err = await b;
    expect(err).toBeInstanceOf(FedaiError);
    expect((err as FedaiError).code).toBe('request-cancelled');
    expect((err as FedaiError).usage).toBeUndefined();
    expect(h.manager.status()).toMatchObject({ queued: 0, inFlight: 1 });
    expect((await a).output).toBe(expected);
  });

  it('graceful stop drains an in-flight request and refuses new ones', async () => {
    const h = mock({ env: { FEDAI_MOCK_TOKEN_DELAY_MS: '30' } });
    const exits: { code: number | null; signal: string | null }[] = [];
    h.manager.on('exit', (e: { code: number | null; signal: string | null }) => exits.push(e));
    await h.manager.start();
    const pid = h.manager.status().pid!;
    const inflight = h.manager.infer(REQ);
    await waitFor(() => h.manager.status().inFlight === 1, 5000, 'in flight');
    const stopping = h.manager.stop();
    expect(h.manager.ready).toBe(false);
    const refused = (await h.manager.infer(REQ).catch((e: unknown) => e)) as FedaiError;
    expect(refused.code).toBe('node-draining');
    expect((await inflight).output).toBe(expected);
    await stopping;
    expect(h.manager.state).toBe('stopped');
    expect(exits).toEqual([expect.objectContaining({ code: 0, signal: null })]); // shutdown + exit, not a kill
    expect(processesWithMarker(h.marker)).toEqual([]);
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it('stopping another manager of the same name leaves this one’s runner alone', async () => {
    const pid = shared.manager.status().pid!;
    const h = mock();
    await h.manager.start();
    expect(h.manager.status().pid).not.toBe(pid);
    await h.manager.stop();
    expect(isLive(pid)).toBe(true);
    expect(shared.manager.status()).toMatchObject({ state: 'ready', pid, restarts: 0 });
  });

  it('the runner gets no secret from the supervisor’s process.env', async () => {
    const secrets: Record<string, string> = {
      NODE_PRIVATE_KEY_PEM: 'SECRET-PEM-VALUE',
      ROUTER_PUBLIC_KEY_PEM: 'ROUTER-PEM-VALUE',
      NODE_LND_MACAROON_HEX: 'MACAROON-VALUE',
      NODE_RUNNER_API_KEY: 'RUNNER-KEY-VALUE',
    };
    Object.assign(process.env, secrets);
    try {
      const h = mock();
      await h.manager.start();
      const environ = readFileSync(`/proc/${h.manager.status().pid}/environ`, 'latin1').split('\0').filter(Boolean);
      const keys = environ.map((e) => e.slice(0, e.indexOf('='))).sort();
      expect(keys).toEqual(['FEDAI_ADAPTER', 'FEDAI_RUNNER_ID', 'FEDAI_TEST_MARKER', 'HOME', 'LANG', 'PATH', 'TZ']);
      for (const v of Object.values(secrets)) expect(environ.join('\n')).not.toContain(v);
    } finally {
      for (const k of Object.keys(secrets)) delete process.env[k];
    }
  });
});
