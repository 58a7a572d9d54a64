/**
 * vllm adapter: vLLM's OpenAI-compatible server (see docs/runners.md).
 *
 *   start      (managed: spawn the command) → poll GET /health until 200 → GET /v1/models
 *   models     GET /v1/models: every entry with its real `max_model_len` as the context window
 *              (4096 only when the server reports none — the model info then says so in `family`)
 *   infer      POST /v1/completions {model, prompt, max_tokens, temperature, top_p, stream,
 *              stream_options:{include_usage:true}}; stream chunks → deltas, usage from the final chunk,
 *              `data: [DONE]` ends it
 *   estimate   POST /tokenize {model, prompt} (exact) when the server has it, else chars/4 (exact:false)
 *   health     GET /health (200) with the inference credentials, plus model presence in /v1/models
 *   cancel     the HTTP request is aborted (vLLM aborts the sequence on disconnect)
 *
 * Keep-alive is on by default (uvicorn sets TCP_NODELAY); FEDAI_BACKEND_KEEP_ALIVE=0 turns it off.
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

export const VLLM_FALLBACK_CONTEXT = 4096;

interface CompletionChunk {
  choices?: Array<{ text?: unknown; finish_reason?: unknown }>;
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
}

function finishOf(r: unknown): FinishReason {
  return r === 'length' ? 'length' : 'stop';
}

export class VllmAdapter implements RunnerAdapter {
  readonly name = 'vllm';
  readonly version = ADAPTER_VERSION;
  readonly capabilities: RunnerCapabilities = { streaming: true, estimate: true, cancellation: true };

  private readonly conn: BackendConnection;
  private readonly catalog = new ModelCatalog();
  private tokenizeAvailable = true;
  private readonly latency = new LatencyModel({ promptMsPerToken: 0.5, genMsPerToken: 20, overheadMs: 10 });

  constructor(private readonly env: BackendEnv) {
    this.conn = new BackendConnection(env, { adapter: 'vllm', keepAliveDefault: true, healthPath: '/health' });
  }

  get managedBackend() {
    return this.conn.managed;
  }

  async start(): Promise<void> {
    await this.conn.startManaged();
    await waitForBackendHealth(this.conn, this.env.startTimeoutMs, 'vLLM server');
    const models = await this.refreshModels();
    if (models.length === 0) throw new AdapterError('backend-error', 'vLLM serves no model', { details: ['no-models'] });
    logStderr('info', 'vllm backend ready', { models: models.length, viaProxy: this.conn.client.viaProxy });
  }

  private async refreshModels(): Promise<ModelInfo[]> {
    this.conn.ensureUp();
    const res = await this.conn.client.request({ method: 'GET', path: '/v1/models', timeoutMs: 10_000 });
    const body = (await res.jsonOrUndefined()) as { data?: Array<{ id?: unknown; max_model_len?: unknown }> } | undefined;
    if (!res.ok) throw mapBackendError(res.status, body);
    if (!Array.isArray(body?.data)) throw new AdapterError('backend-error', 'vLLM /v1/models has no data list', { details: ['invalid-response'] });
    const entries = body.data.filter((m): m is { id: string; max_model_len?: unknown } => typeof m?.id === 'string' && m.id.length > 0);
    const rename = this.env.modelId !== undefined && entries.length === 1;
    if (this.env.modelId !== undefined && entries.length > 1) {
      logStderr('warn', 'FEDAI_MODEL_ID ignored: the vLLM server serves several models', { models: entries.length });
    }
    const ids = new Map<string, string>();
    const models: ModelInfo[] = entries.map((m) => {
      const id = rename ? this.env.modelId! : m.id;
      ids.set(id, m.id);
      if (isNonNegInt(m.max_model_len) && m.max_model_len > 0) {
        return { id, contextWindow: m.max_model_len, maxTokens: m.max_model_len, family: 'vllm' };
      }
      logStderr('warn', 'vLLM reported no max_model_len: assuming a 4096-token context', { model: id });
      return { id, contextWindow: VLLM_FALLBACK_CONTEXT, maxTokens: VLLM_FALLBACK_CONTEXT, family: 'vllm (context window assumed: no max_model_len reported)' };
    });
    return this.catalog.set(models, ids);
  }

  listModels(): Promise<ModelInfo[]> {
    return this.catalog.list(() => this.refreshModels());
  }

  maxParallel(): number {
    // vLLM batches continuously; without a configured cap allow a modest number of parallel requests.
    return this.env.maxParallel ?? 8;
  }

  async infer(request: RunnerInferRequest, ctx: InferContext): Promise<InferResult> {
    validateInferRequest(request);
    const { backendId } = this.catalog.resolve(request);
    this.conn.ensureUp();
    const stream = ctx.onDelta !== undefined;
    const body: Record<string, unknown> = {
      model: backendId,
      prompt: request.prompt,
      max_tokens: request.maxTokens,
      temperature: request.temperature ?? 0.7,
      top_p: request.topP ?? 0.95,
      stream,
    };
    if (stream) body.stream_options = { include_usage: true };
    const t0 = performance.now();
    let outputTokens = 0;
    let inputTokens: number | undefined;
    const partial = (): Usage => ({ inputTokens: inputTokens ?? estimateTokens(request.prompt), outputTokens });
    try {
      const res = await this.conn.client.request({
        method: 'POST',
        path: '/v1/completions',
        json: body,
        signal: ctx.signal,
        traceparent: ctx.traceparent,
        timeoutMs: this.env.inferTimeoutMs,
        accept: stream ? 'text/event-stream' : 'application/json',
      });
      if (!res.ok) throw mapBackendError(res.status, await res.jsonOrUndefined(), partial());
      if (!res.isEventStream) {
        const j = (await res.json()) as CompletionChunk;
        const text = j?.choices?.[0]?.text;
        if (typeof text !== 'string') throw new AdapterError('backend-error', 'vLLM response has no text', { details: ['invalid-response'] });
        if (stream && text.length > 0) ctx.onDelta?.(text);
        return this.result(request, text, j.usage, finishOf(j.choices?.[0]?.finish_reason), t0, undefined);
      }
      let output = '';
      let ttftMs: number | undefined;
      let finish: FinishReason = 'stop';
      let usage: CompletionChunk['usage'];
      let sawDone = false;
      for await (const ev of sseEvents(res)) {
        if (ev.kind === 'done') {
          sawDone = true;
          break;
        }
        let j: CompletionChunk & { error?: unknown; object?: unknown };
        try {
          j = JSON.parse(ev.data);
        } catch {
          res.dispose();
          throw new AdapterError('backend-error', 'vLLM stream event is not JSON', { details: ['invalid-stream-event'], usage: partial() });
        }
        if (ev.kind === 'error' || j.error !== undefined || j.object === 'error') {
          res.dispose();
          const code = (j.error as { code?: unknown } | undefined)?.code ?? (j as { code?: unknown }).code;
          throw mapBackendError(typeof code === 'number' ? code : 500, j, partial());
        }
        const c = j.choices?.[0];
        if (c && typeof c.text === 'string' && c.text.length > 0) {
          if (ttftMs === undefined) ttftMs = Math.round(performance.now() - t0);
          output += c.text;
          outputTokens++;
          ctx.onDelta?.(c.text);
        }
        if (c && typeof c.finish_reason === 'string') finish = finishOf(c.finish_reason);
        if (j.usage) {
          usage = j.usage;
          if (isNonNegInt(j.usage.prompt_tokens)) inputTokens = j.usage.prompt_tokens;
          if (isNonNegInt(j.usage.completion_tokens)) outputTokens = j.usage.completion_tokens;
        }
      }
      if (!sawDone) throw new AdapterError('backend-error', 'vLLM stream ended without [DONE]', { details: ['stream-truncated'], usage: partial() });
      return this.result(request, output, usage, finish, t0, ttftMs);
    } catch (err) {
      throw inferFailure(err, ctx.signal, partial, 'vLLM');
    }
  }

  private result(
    request: RunnerInferRequest,
    output: string,
    usage: CompletionChunk['usage'],
    finish: FinishReason,
    t0: number,
    ttftMs: number | undefined,
  ): InferResult {
    if (!usage || !isNonNegInt(usage.prompt_tokens) || !isNonNegInt(usage.completion_tokens)) {
      throw new AdapterError('backend-error', 'vLLM response has no usage', { details: ['invalid-response', 'usage-missing'] });
    }
    const latencyMs = Math.round(performance.now() - t0);
    // vLLM reports no timings: learn speed from wall clock (time to first token covers the prompt).
    if (ttftMs !== undefined && usage.completion_tokens > 1) {
      this.latency.observe({ promptTokens: usage.prompt_tokens, promptMs: ttftMs, genTokens: usage.completion_tokens - 1, genMs: latencyMs - ttftMs });
    } else if (usage.completion_tokens > 0) {
      this.latency.observe({ genTokens: usage.completion_tokens, genMs: latencyMs });
    }
    const r: InferResult = {
      requestId: request.requestId,
      modelId: request.modelId,
      output,
      usage: { inputTokens: usage.prompt_tokens, outputTokens: usage.completion_tokens },
      latencyMs,
      finishReason: finish,
    };
    if (ttftMs !== undefined) r.ttftMs = ttftMs;
    return r;
  }

  async estimate(request: RunnerInferRequest): Promise<EstimateResult> {
    validateInferRequest(request);
    const { backendId, info } = this.catalog.resolve(request);
    let inputTokens = estimateTokens(request.prompt);
    let exact = false;
    if (this.tokenizeAvailable) {
      this.conn.ensureUp();
      const res = await this.conn.client.request({ method: 'POST', path: '/tokenize', json: { model: backendId, prompt: request.prompt }, timeoutMs: 10_000 });
      const body = (await res.jsonOrUndefined()) as { count?: unknown; tokens?: unknown } | undefined;
      if (res.ok && (isNonNegInt(body?.count) || Array.isArray(body?.tokens))) {
        inputTokens = isNonNegInt(body?.count) ? body.count : (body!.tokens as unknown[]).length;
        exact = true;
      } else if (res.status === 404 || res.status === 405) {
        this.tokenizeAvailable = false; // older vLLM: no /tokenize
      } else if (!res.ok) {
        throw mapBackendError(res.status, body);
      }
    }
    const outputTokensMax = outputRoom(request.maxTokens, info?.contextWindow, inputTokens);
    return { inputTokens, exact, outputTokensMax, latencyEstimateMs: this.latency.estimateMs(inputTokens, outputTokensMax) };
  }

  health(): Promise<HealthResult> {
    // Deep: the server answers AND still lists a model (an engine that lost its model is not healthy).
    return probeBackendHealth(this.conn, async () => {
      const models = await this.refreshModels();
      return models.length === 0 ? { ok: false, detail: 'no-models' } : { ok: true };
    });
  }

  async stop(): Promise<void> {
    await this.conn.stop();
  }
}

export function createAdapter(env: NodeJS.ProcessEnv): RunnerAdapter {
  return new VllmAdapter(readBackendEnv(env));
}
