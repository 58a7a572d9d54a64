/**
 * /infer and /infer/stream through the supervisor, the sandboxed runner (dev profile: the runner
 * reaches the backend only through the egress proxy) and each faithful fake backend; the backend's
 * exact token counts must land in the signed metering record. Managed mode: the runner starts the
 * fake llama-server itself, inside its sandbox.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { checkEnvelopeSignature } from '../../supervisor/crypto/envelope.js';
import type { EnvName } from '../../supervisor/config/env-spec.js';
import { startTestNode, parseSse, type TestNode } from '../helpers/test-node.js';
import { FAKES, startFake, type FakeBackend } from '../runner-host/adapters/helpers.js';

interface Case {
  name: string;
  fake?: { script: string; args?: string[] };
  env(fake?: FakeBackend): Partial<Record<EnvName, string>>;
  /** The backend's own token counts for the same prompt, asked directly. */
  direct(fake: FakeBackend | undefined, prompt: string, maxTokens: number): Promise<{ inputTokens: number; outputTokens: number } | undefined>;
}

const post = async (url: string, body: unknown) => (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json() as Promise<any>;

const CASES: Case[] = [
  {
    name: 'llama_cpp (attached)',
    fake: { script: 'fake-llama-cpp.mjs', args: ['--n-ctx', '2048'] },
    env: (f) => ({ NODE_RUNNER: 'llama_cpp', NODE_LLAMA_CPP_URL: f!.url }),
    direct: async (f, prompt, n) => {
      const r = await post(`${f!.url}/completion`, { prompt, n_predict: n, temperature: 0 });
      return { inputTokens: r.tokens_evaluated, outputTokens: r.tokens_predicted };
    },
  },
  {
    name: 'vllm (attached)',
    fake: { script: 'fake-vllm.mjs' },
    env: (f) => ({ NODE_RUNNER: 'vllm', NODE_VLLM_URL: f!.url }),
    direct: async (f, prompt, n) => {
      const models = await (await fetch(`${f!.url}/v1/models`)).json() as any;
      const r = await post(`${f!.url}/v1/completions`, { model: models.data[0].id, prompt, max_tokens: n, temperature: 0 });
      return { inputTokens: r.usage.prompt_tokens, outputTokens: r.usage.completion_tokens };
    },
  },
  {
    name: 'http (attached)',
    fake: { script: 'fake-http-backend.mjs' },
    env: (f) => ({ NODE_RUNNER: 'http', NODE_RUNNER_URL: f!.url }),
    direct: async (f, prompt, n) => {
      const models = await (await fetch(`${f!.url}/models`)).json() as any;
      const r = await post(`${f!.url}/infer`, { requestId: 'direct', modelId: models.models[0].id, prompt, maxTokens: n });
      return r.usage;
    },
  },
  {
    name: 'llama_cpp (managed inside the sandbox)',
    env: () => ({
      NODE_RUNNER: 'llama_cpp',
      NODE_RUNNER_COMMAND: JSON.stringify([process.execPath, path.join(FAKES, 'fake-llama-cpp.mjs'), '--port', '{port}', '--n-ctx', '2048']),
    }),
    direct: async () => undefined,
  },
];

describe.each(CASES)('$name', (c) => {
  let fake: FakeBackend | undefined;
  let t: TestNode;
  afterAll(async () => {
    await t?.stop();
    await fake?.stop();
  });

  it('answers /infer with the backend token counts in the signed metering record, and streams', async () => {
    if (c.fake) fake = await startFake(c.fake.script, c.fake.args ?? []);
    t = await startTestNode({ ...c.env(fake), NODE_RUNNER_START_TIMEOUT_MS: '30000' });
    expect(t.node.runner.ready).toBe(true);
    const models = t.node.runner.listModels();
    const prompt = 'Once upon a time';
    const req = t.request({ modelId: 'auto', prompt, maxTokens: 8, temperature: 0 });
    const r = await t.post('/infer', t.sign(req));
    expect(r.status).toBe(200);
    const { response, metering } = r.json;
    expect(checkEnvelopeSignature(response)).toBeNull();
    expect(checkEnvelopeSignature(metering)).toBeNull();
    expect(metering.payload.inputTokens).toBe(response.payload.usage.inputTokens);
    expect(metering.payload.outputTokens).toBe(response.payload.usage.outputTokens);
    expect(metering.payload.outputTokens).toBeGreaterThan(0);
    const direct = await c.direct(fake, prompt, 8);
    // every attached backend is asked directly; only the managed one (no fake of ours to ask) is not
    expect(direct === undefined).toBe(c.fake === undefined);
    if (direct) expect({ inputTokens: metering.payload.inputTokens, outputTokens: metering.payload.outputTokens }).toEqual(direct);
    expect(models.length).toBeGreaterThan(0);

    const s = await t.post('/infer/stream', t.sign(t.request({ modelId: 'auto', prompt, maxTokens: 6, temperature: 0 })));
    expect(s.status).toBe(200);
    const frames = parseSse(s.text);
    const final = frames.find((f) => f.event === 'final');
    expect(final).toBeDefined();
    const chunks = frames.filter((f) => f.event === 'chunk');
    expect(chunks.length).toBeGreaterThanOrEqual(1);
    expect(chunks.map((f) => f.data.delta).join('')).toBe(final!.data.response.payload.output);
    expect(final!.data.metering.payload.outputTokens).toBe(final!.data.response.payload.usage.outputTokens);
  }, 90_000);
});
