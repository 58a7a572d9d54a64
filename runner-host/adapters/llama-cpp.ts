/**
 * llama_cpp adapter: llama.cpp's `llama-server`, native API (see docs/runners.md and
 * ../shared/reference/llama-cpp-server.md for the observed behaviour this relies on).
 *
 *   start      (managed: spawn the command) → poll GET /health until 200 (503 "Loading model" = wait)
 *              → GET /props (per-slot n_ctx, total_slots, build_info) + GET /v1/models (model id)
 *   infer      POST /completion {prompt, n_predict, temperature, top_p, stream, cache_prompt:true};
 *              usage from tokens_evaluated / tokens_predicted (timings.prompt_n/predicted_n as fallback),
 *              latency from timings; streaming over its SSE (final `"stop":true` event, no [DONE]);
 *              `error: {…}` lines inside a 200 stream are mapped like HTTP errors
 *   estimate   POST /tokenize {content, add_special:true} (BOS included, like tokens_evaluated)
 *   health     GET /health with the same credentials as inference; 503 → ok:false 'loading'
 *   cancel     the HTTP request is aborted; llama-server cancels the task when the client disconnects
 *
 * A fresh connection per request by default (FEDAI_BACKEND_KEEP_ALIVE=1 to pool): the reference build
 * stalls ~40 ms per request on a reused connection (no TCP_NODELAY on its side).
 */
import { AdapterError, estimateTokens, type InferContext, type RunnerAdapter } from '../adapter.js';
import type {
  EstimateResult,
  FinishReason,
  HealthResult,
  InferResult,
  ModelInfo,
  RunnerCapabilities,
  RunnerInferRequest,
  Usage,
} from '../../supervisor/protocol/runner-protocol.js';
import { sseEvents } from '../backend/sse.js';
import {
  ADAPTER_VERSION,
  BackendConnection,
  LatencyModel,
  inferFailure,
  isNonNegInt,
  mapBackendError,
  outputRoom,
  readBackendEnv,
  validateInferRequest,
  type BackendEnv,
  ModelCatalog,
  waitForBackendHealth,
  probeBackendHealth,
} from '../backend/common.js';
import { logStderr } from '../backend/log.js';

interface Timings {
  prompt_n?: number;
  prompt_ms?: number;
  predicted_n?: number;
  predicted_ms?: number;
}

interface CompletionBody {
  content?: unknown;
  stop?: unknown;
  stop_type?: unknown;
  tokens_predicted?: unknown;
  tokens_evaluated?: unknown;
  truncated?: unknown;
  timings?: Timings;
}

function finishReasonOf(stopType: unknown): FinishReason {
  return stopType === 'limit' ? 'length' : 'stop';
}

export class LlamaCppAdapter implements RunnerAdapter {
  readonly name = 'llama_cpp';
  readonly version = ADAPTER_VERSION;
  readonly capabilities: RunnerCapabilities = { streaming: true, estimate: true, cancellation: true };

  private readonly conn: BackendConnection;
  private readonly catalog = new ModelCatalog();
  private slots = 1;
  private nCtx: number | undefined;
  private tokenizeAvailable = true;
  private readonly latency = new LatencyModel({ promptMsPerToken: 1, genMsPerToken: 25, overheadMs: 5 });

  constructor(private readonly env: BackendEnv) {
    this.conn = new BackendConnection(env, { adapter: 'llama_cpp', keepAliveDefault: false, healthPath: '/health' });
  }

  get managedBackend() {
    return this.conn.managed;
  }

  async start(): Promise<void> {
    await this.conn.startManaged();
    await waitForBackendHealth(this.conn, this.env.startTimeoutMs, 'llama.cpp server');
    await this.refreshModels();
    logStderr('info', 'llama_cpp backend ready', { nCtx: this.nCtx ?? -1, slots: this.slots, viaProxy: this.conn.client.viaProxy });
  }

  private async refreshModels(): Promise<ModelInfo[]> {
    this.conn.ensureUp();
    const props = await this.conn.client.request({ method: 'GET', path: '/props', timeoutMs: 10_000 });
    const pbody = (await props.jsonOrUndefined()) as
      | { default_generation_settings?: { n_ctx?: unknown }; total_slots?: unknown; build_info?: unknown }
      | undefined;
    if (!props.ok) throw mapBackendError(props.status, pbody);
    const nCtx = pbody?.default_generation_settings?.n_ctx;
    if (!isNonNegInt(nCtx) || nCtx < 1) {
      throw new AdapterError('backend-error', 'llama.cpp /props has no per-slot n_ctx', { details: ['props-n_ctx-missing'] });
    }
    this.nCtx = nCtx;
    if (isNonNegInt(pbody?.total_slots) && pbody.total_slots > 0) this.slots = pbody.total_slots;
    const build = typeof pbody?.build_info === 'string' && /^[\w.-]{1,64}$/.test(pbody.build_info) ? pbody.build_info : undefined;

    let backendId: string | undefined;
    const mres = await this.conn.client.request({ method: 'GET', path: '/v1/models', timeoutMs: 10_000 });
    const mbody = (await mres.jsonOrUndefined()) as { data?: Array<{ id?: unknown }> } | undefined;
    if (!mres.ok && mres.status !== 404) throw mapBackendError(mres.status, mbody);
    const first = mres.ok && Array.isArray(mbody?.data) ? mbody.data[0] : undefined;
    if (first && typeof first.id === 'string' && first.id.length > 0) backendId = first.id;
    const id = this.env.modelId ?? (backendId ? modelIdFromPath(backendId) : 'llama-model');
    const info: ModelInfo = { id, contextWindow: nCtx, maxTokens: nCtx, family: 'llama.cpp' };
    if (build) info.version = build;
    return this.catalog.set([info], new Map([[id, backendId ?? id]]));
  }

  listModels(): Promise<ModelInfo[]> {
    return this.catalog.list(() => this.refreshModels());
  }

  maxParallel(): number {
    return this.env.maxParallel ?? this.slots;
  }

  private checkModel(req: RunnerInferRequest): void {
    const models = this.catalog.current;
    if (models && !models.some((m) => m.id === req.modelId)) {
      throw new AdapterError('model-not-found', 'this runner does not serve the requested model', { details: ['modelId'] });
    }
    if (this.nCtx !== undefined && req.maxTokens > this.nCtx) {
      throw new AdapterError('context-window-exceeded', 'maxTokens exceeds the slot context', { details: [`contextWindow=${this.nCtx}`] });
    }
  }

  async infer(request: RunnerInferRequest, ctx: InferContext): Promise<InferResult> {
    validateInferRequest(request);
    this.checkModel(request);
    this.conn.ensureUp();
    const stream = ctx.onDelta !== undefined;
    const body = {
      prompt: request.prompt,
      n_predict: request.maxTokens,
      temperature: request.temperature ?? 0.7,
      top_p: request.topP ?? 0.95,
      stream,
      cache_prompt: true,
    };
    const t0 = performance.now();
    // Partial usage for cancellation and failures: what the backend reported so far.
    let inputTokens: number | undefined;
    let outputTokens = 0;
    const partial = (): Usage => ({ inputTokens: inputTokens ?? estimateTokens(request.prompt), outputTokens });

    try {
      const res = await this.conn.client.request({
        method: 'POST',
        path: '/completion',
        json: body,
        signal: ctx.signal,
        traceparent: ctx.traceparent,
        timeoutMs: this.env.inferTimeoutMs,
        accept: stream ? 'text/event-stream' : 'application/json',
      });
      if (!res.ok) throw mapBackendError(res.status, await res.jsonOrUndefined(), partial());

      if (!res.isEventStream) {
        const j = (await res.json()) as CompletionBody;
        return this.finish(request, j, typeof j?.content === 'string' ? j.content : undefined, t0, undefined, stream ? ctx : undefined);
      }

      let output = '';
      let ttftMs: number | undefined;
      for await (const ev of sseEvents(res)) {
        if (ev.kind === 'error') {
          let eb: unknown;
          try {
            eb = JSON.parse(ev.data);
          } catch {
            eb = undefined;
          }
          const status = typeof (eb as { code?: unknown })?.code === 'number' ? (eb as { code: number }).code : 500;
          res.dispose();
          throw mapBackendError(status, eb, partial());
        }
        if (ev.kind === 'done') break;
        let j: CompletionBody;
        try {
          j = JSON.parse(ev.data) as CompletionBody;
        } catch {
          res.dispose();
          throw new AdapterError('backend-error', 'llama.cpp stream event is not JSON', { details: ['invalid-stream-event'], usage: partial() });
        }
        if (isNonNegInt(j.tokens_evaluated)) inputTokens = j.tokens_evaluated;
        if (isNonNegInt(j.tokens_predicted)) outputTokens = j.tokens_predicted;
        if (j.stop === true) {
          return this.finish(request, j, output, t0, ttftMs);
        }
        if (typeof j.content === 'string' && j.content.length > 0) {
          if (ttftMs === undefined) ttftMs = Math.round(performance.now() - t0);
          output += j.content;
          ctx.onDelta?.(j.content);
        }
      }
      throw new AdapterError('backend-error', 'llama.cpp stream ended without a final event', { details: ['stream-truncated'], usage: partial() });
    } catch (err) {
      throw inferFailure(err, ctx.signal, partial, 'llama.cpp');
    }
  }

  private finish(
    request: RunnerInferRequest,
    j: CompletionBody,
    output: string | undefined,
    t0: number,
    ttftMs: number | undefined,
    emitWhole?: InferContext,
  ): InferResult {
    if (output === undefined) {
      throw new AdapterError('backend-error', 'llama.cpp response has no content', { details: ['invalid-response'] });
    }
    const t = j.timings ?? {};
    const inputTokens = isNonNegInt(j.tokens_evaluated) ? j.tokens_evaluated : isNonNegInt(t.prompt_n) ? t.prompt_n : undefined;
    const outputTokens = isNonNegInt(j.tokens_predicted) ? j.tokens_predicted : isNonNegInt(t.predicted_n) ? t.predicted_n : undefined;
    if (inputTokens === undefined || outputTokens === undefined) {
      throw new AdapterError('backend-error', 'llama.cpp response has no token counts', { details: ['invalid-response', 'usage-missing'] });
    }
    const wall = performance.now() - t0;
    const promptMs = typeof t.prompt_ms === 'number' && Number.isFinite(t.prompt_ms) ? t.prompt_ms : undefined;
    const predictedMs = typeof t.predicted_ms === 'number' && Number.isFinite(t.predicted_ms) && t.predicted_ms < 3_600_000 ? t.predicted_ms : undefined;
    this.latency.observe({ promptTokens: t.prompt_n, promptMs, genTokens: t.predicted_n, genMs: predictedMs });
    const backendMs = promptMs !== undefined && predictedMs !== undefined ? promptMs + predictedMs : undefined;
    if (j.truncated === true) logStderr('warn', 'llama.cpp truncated the prompt or shifted the context', { requestId: request.requestId });
    if (emitWhole?.onDelta && output.length > 0) emitWhole.onDelta(output);
    const result: InferResult = {
      requestId: request.requestId,
      modelId: request.modelId,
      output,
      usage: { inputTokens, outputTokens },
      latencyMs: Math.max(0, Math.round(backendMs ?? wall)),
      finishReason: finishReasonOf(j.stop_type),
    };
    const ttft = ttftMs ?? (promptMs !== undefined ? Math.round(promptMs) : undefined);
    if (ttft !== undefined) result.ttftMs = ttft;
    return result;
  }

  async estimate(request: RunnerInferRequest): Promise<EstimateResult> {
    validateInferRequest(request);
    let inputTokens = estimateTokens(request.prompt);
    let exact = false;
    if (this.tokenizeAvailable) {
      this.conn.ensureUp();
      const res = await this.conn.client.request({
        method: 'POST',
        path: '/tokenize',
        json: { content: request.prompt, add_special: true },
        timeoutMs: 10_000,
      });
      const body = (await res.jsonOrUndefined()) as { tokens?: unknown } | undefined;
      if (res.ok && Array.isArray(body?.tokens)) {
        inputTokens = body.tokens.length;
        exact = true;
      } else if (res.status === 404) {
        this.tokenizeAvailable = false;
      } else if (!res.ok) {
        throw mapBackendError(res.status, body);
      } else {
        throw new AdapterError('backend-error', 'llama.cpp /tokenize answer has no tokens', { details: ['invalid-response'] });
      }
    }
    const outputTokensMax = outputRoom(request.maxTokens, this.nCtx, inputTokens);
    return { inputTokens, exact, outputTokensMax, latencyEstimateMs: this.latency.estimateMs(inputTokens, outputTokensMax) };
  }

  health(): Promise<HealthResult> {
    return probeBackendHealth(this.conn);
  }

  async stop(): Promise<void> {
    await this.conn.stop();
  }
}

/** llama.cpp reports the model file path as its id when no alias (-a) is set: advertise the file's base name. */
export function modelIdFromPath(id: string): string {
  if (!id.includes('/')) return id;
  const base = id.slice(id.lastIndexOf('/') + 1);
  return base.replace(/\.gguf$/i, '') || id;
}

export function createAdapter(env: NodeJS.ProcessEnv): RunnerAdapter {
  return new LlamaCppAdapter(readBackendEnv(env));
}
