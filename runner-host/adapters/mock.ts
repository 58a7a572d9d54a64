/**
 * The mock adapter: for tests, demos and `npm start` only. Deterministic output derived from token
 * counts alone, so it can never echo any part of a prompt (upstream defect 15): the output is n words
 * picked from a fixed vocabulary by position and by the prompt's token count.
 *
 * Environment:
 *   FEDAI_MODEL_ID             advertised model id (default "mock-model"); contextWindow = maxTokens = 4096
 *   FEDAI_MAX_PARALLEL         parallel inferences the runner accepts (default 16)
 *   FEDAI_MOCK_TOKEN_DELAY_MS  delay between tokens (default 0; the adapter still yields to the event
 *                              loop between tokens so cancellation is honoured)
 * Test hooks (never set in production):
 *   FEDAI_MOCK_FAIL_EVERY=N    every Nth infer fails
 *   FEDAI_MOCK_FAIL_KIND       "adapter" (default): AdapterError backend-error;
 *                              "unexpected": a plain Error whose message contains the prompt, to prove the
 *                              host never forwards or logs the message of an unexpected error
 *   FEDAI_MOCK_FAIL_START=1    start() rejects (exercises runner-host/main.ts's exit 1)
 *   FEDAI_MOCK_CONSOLE_NOISE=1 start() and every infer call print a fixed line (console.log, and in infer
 *                              also process.stdout.write), to prove that
 *                              runner-host/main.ts keeps stray prints off the frame stream (stdout)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AdapterError, estimateTokens, type InferContext, type RunnerAdapter } from '../adapter.js';
import type {
  EstimateResult,
  HealthResult,
  InferResult,
  ModelInfo,
  RunnerInferRequest,
} from '../../supervisor/protocol/runner-protocol.js';

export const MOCK_VOCABULARY: readonly string[] = [
  'alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel',
  'india', 'juliett', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa',
  'quebec', 'romeo', 'sierra', 'tango', 'uniform', 'victor', 'whiskey', 'xray',
  'yankee', 'zulu', 'one', 'two', 'three', 'four', 'five', 'six',
];

export const MOCK_DEFAULT_MODEL_ID = 'mock-model';
export const MOCK_CONTEXT_WINDOW = 4096;
export const MOCK_MAX_TOKENS = 4096;

/** Number of words the mock emits for a prompt of `inputTokens` tokens and a cap of `maxTokens`. */
export function mockOutputLength(inputTokens: number, maxTokens: number): number {
  return Math.max(0, Math.min(maxTokens, 16 + (inputTokens % 8)));
}

/** The i-th word for a prompt of `inputTokens` tokens. */
export function mockWord(inputTokens: number, i: number): string {
  return MOCK_VOCABULARY[(inputTokens * 7 + i * 13) % MOCK_VOCABULARY.length];
}

/** The whole deterministic output, as the concatenation of the streamed deltas. */
export function mockOutput(inputTokens: number, maxTokens: number): string {
  const n = mockOutputLength(inputTokens, maxTokens);
  const words: string[] = [];
  for (let i = 0; i < n; i++) words.push(mockWord(inputTokens, i));
  return words.join(' ');
}

function intEnv(env: NodeJS.ProcessEnv, name: string, dflt: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}`);
  return n;
}

export function createAdapter(env: NodeJS.ProcessEnv): RunnerAdapter {
  const modelId = env.FEDAI_MODEL_ID && env.FEDAI_MODEL_ID.length > 0 ? env.FEDAI_MODEL_ID : MOCK_DEFAULT_MODEL_ID;
  const maxParallel = intEnv(env, 'FEDAI_MAX_PARALLEL', 16, 1);
  const delayMs = intEnv(env, 'FEDAI_MOCK_TOKEN_DELAY_MS', 0, 0);
  const failEvery = intEnv(env, 'FEDAI_MOCK_FAIL_EVERY', 0, 0);
  const failKind = env.FEDAI_MOCK_FAIL_KIND === 'unexpected' ? 'unexpected' : 'adapter';
  const model: ModelInfo = { id: modelId, contextWindow: MOCK_CONTEXT_WINDOW, maxTokens: MOCK_MAX_TOKENS, family: 'mock' };
  const consoleNoise = env.FEDAI_MOCK_CONSOLE_NOISE === '1';
  let calls = 0;

  const checkModel = (request: RunnerInferRequest): void => {
    if (request.modelId !== modelId) {
      throw new AdapterError('model-not-found', 'model not served by this runner', { details: ['modelId is not served by this runner'] });
    }
  };

  return {
    name: 'mock',
    version: '1.0.0',
    capabilities: { streaming: true, estimate: true, cancellation: true },

    async start(): Promise<void> {
      if (env.FEDAI_MOCK_FAIL_START === '1') throw new Error('mock start failure (FEDAI_MOCK_FAIL_START=1)');
      if (consoleNoise) console.log('mock adapter: stray console output at start');
    },

    async listModels(): Promise<ModelInfo[]> {
      return [{ ...model }];
    },

    maxParallel(): number {
      return maxParallel;
    },

    async infer(request: RunnerInferRequest, ctx: InferContext): Promise<InferResult> {
      const t0 = Date.now();
      checkModel(request);
      calls++;
      if (consoleNoise) {
        console.log('mock adapter: stray console output in infer');
        process.stdout.write('mock adapter: stray direct stdout write in infer\n');
      }
      const inputTokens = estimateTokens(request.prompt);
      if (failEvery > 0 && calls % failEvery === 0) {
        if (failKind === 'unexpected') throw new Error(`unexpected mock failure; prompt was: ${request.prompt}`);
        throw new AdapterError('backend-error', 'mock failure (FEDAI_MOCK_FAIL_EVERY)', {
          usage: { inputTokens, outputTokens: 0 },
        });
      }
      const maxTokens = Math.min(request.maxTokens, model.maxTokens);
      const n = mockOutputLength(inputTokens, maxTokens);
      let output = '';
      let emitted = 0;
      let ttftMs: number | undefined;
      const cancelled = (): AdapterError =>
        new AdapterError('request-cancelled', 'request cancelled', { usage: { inputTokens, outputTokens: emitted } });
      for (let i = 0; i < n; i++) {
        if (ctx.signal.aborted) throw cancelled();
        // Without a delay and without a listener, nothing can observe the pacing: generate in one go.
        // Streams (and any delay) yield between tokens so cancellation and interleaving are real.
        if ((i > 0 || delayMs > 0) && (delayMs > 0 || ctx.onDelta !== undefined)) {
          try {
            if (delayMs > 0) await sleep(delayMs, undefined, { signal: ctx.signal });
            else await new Promise<void>((r) => setImmediate(r));
          } catch {
            throw cancelled();
          }
          if (ctx.signal.aborted) throw cancelled();
        }
        const delta = i === 0 ? mockWord(inputTokens, i) : ` ${mockWord(inputTokens, i)}`;
        output += delta;
        emitted++;
        if (ttftMs === undefined) ttftMs = Date.now() - t0;
        ctx.onDelta?.(delta);
      }
      return {
        requestId: request.requestId,
        modelId,
        output,
        usage: { inputTokens, outputTokens: emitted },
        latencyMs: Date.now() - t0,
        finishReason: n >= maxTokens ? 'length' : 'stop',
        ...(ttftMs !== undefined ? { ttftMs } : {}),
      };
    },

    async estimate(request: RunnerInferRequest): Promise<EstimateResult> {
      checkModel(request);
      const inputTokens = estimateTokens(request.prompt);
      const outputTokensMax = Math.min(request.maxTokens, model.maxTokens);
      const n = mockOutputLength(inputTokens, outputTokensMax);
      return { inputTokens, exact: false, outputTokensMax, latencyEstimateMs: Math.max(1, n * delayMs) };
    },

    async health(): Promise<HealthResult> {
      return { ok: true, detail: 'mock adapter' };
    },

    async stop(): Promise<void> {
      // nothing to release
    },
  };
}
