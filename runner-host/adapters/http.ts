/**
 * http adapter: a generic backend that speaks fed_AI's own runner HTTP mapping (wire spec §12), with
 * upstream defect 16 fixed: only the inference fields are sent, never receipts, metadata or keys.
 *
 *   GET  /models    → {models: ModelInfo[]}; empty → [{id: FEDAI_MODEL_ID ?? 'http', contextWindow: 4096}]
 *   POST /infer     ← {requestId, modelId, prompt, maxTokens, temperature?, topP?} (+ stream:true when the
 *                     caller streams); → InferenceResponse {requestId, modelId, output,
 *                     usage:{inputTokens, outputTokens}, latencyMs}, validated (integer usage).
 *                     Streaming: a `text/event-stream` answer of `data: {"delta":"…"}` events and a final
 *                     `data: {<InferenceResponse>}` (optionally `data: [DONE]`); any other answer is
 *                     relayed as one delta.
 *   POST /estimate  ← the same fields; → {inputTokens?, latencyEstimateMs?}; 404/405/501 → chars/4
 *   GET  /health    2xx = ok, sent with the same credentials as inference (defect 27)
 */
import { AdapterError, estimateTokens, type InferContext, type RunnerAdapter } from '../adapter.js';
import type {
  EstimateResult,
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
  inferFailure,
  isNonNegInt,
  mapBackendError,
  outputRoom,
  readBackendEnv,
  validateInferRequest,
  waitUntilReady,
  type BackendEnv,
  ModelCatalog,
  probeBackendHealth,
} from '../backend/common.js';
import { logStderr } from '../backend/log.js';

const DEFAULT_CONTEXT = 4096;

function invalid(what: string): AdapterError {
  return new AdapterError('backend-error', 'http backend sent an invalid response', { details: ['invalid-response', what] });
}

/** Only these fields ever leave the runner (upstream defect 16). */
export function backendInferBody(r: RunnerInferRequest, backendModelId: string, stream: boolean): Record<string, unknown> {
  const b: Record<string, unknown> = { requestId: r.requestId, modelId: backendModelId, prompt: r.prompt, maxTokens: r.maxTokens };
  if (r.temperature !== undefined) b.temperature = r.temperature;
  if (r.topP !== undefined) b.topP = r.topP;
  if (stream) b.stream = true;
  return b;
}

function parseModel(m: unknown): ModelInfo | undefined {
  if (!m || typeof m !== 'object') return undefined;
  const o = m as Record<string, unknown>;
  if (typeof o.id !== 'string' || o.id.length === 0 || o.id.length > 256) return undefined;
  const contextWindow = isNonNegInt(o.contextWindow) && o.contextWindow > 0 ? o.contextWindow : DEFAULT_CONTEXT;
  const maxTokens = isNonNegInt(o.maxTokens) && o.maxTokens > 0 ? Math.min(o.maxTokens, contextWindow) : contextWindow;
  const info: ModelInfo = { id: o.id, contextWindow, maxTokens };
  if (typeof o.family === 'string' && o.family.length <= 128) info.family = o.family;
  if (typeof o.version === 'string' && o.version.length <= 128) info.version = o.version;
  return info;
}

export class HttpAdapter implements RunnerAdapter {
  readonly name = 'http';
  readonly version = ADAPTER_VERSION;
  readonly capabilities: RunnerCapabilities = { streaming: true, estimate: true, cancellation: true };

  private readonly conn: BackendConnection;
  private readonly catalog = new ModelCatalog();
  private estimateAvailable = true;

  constructor(private readonly env: BackendEnv) {
    this.conn = new BackendConnection(env, { adapter: 'http', keepAliveDefault: true, healthPath: '/health' });
  }

  get managedBackend() {
    return this.conn.managed;
  }

  async start(): Promise<void> {
    await this.conn.startManaged();
    await waitUntilReady(() => this.refreshModels(), this.env.startTimeoutMs, 'http backend');
    logStderr('info', 'http backend ready', { models: this.catalog.current?.length ?? 0, viaProxy: this.conn.client.viaProxy });
  }

  private async refreshModels(): Promise<ModelInfo[]> {
    this.conn.ensureUp();
    const res = await this.conn.client.request({ method: 'GET', path: '/models', timeoutMs: 10_000 });
    const body = (await res.jsonOrUndefined()) as { models?: unknown } | undefined;
    if (!res.ok) throw mapBackendError(res.status, body);
    if (!body || !Array.isArray(body.models)) throw invalid('models');
    const parsed = body.models.map(parseModel);
    if (parsed.some((m) => m === undefined)) throw invalid('models');
    let models = parsed as ModelInfo[];
    const ids = new Map<string, string>();
    if (models.length === 0) {
      const id = this.env.modelId ?? 'http';
      models = [{ id, contextWindow: DEFAULT_CONTEXT, maxTokens: DEFAULT_CONTEXT }];
      ids.set(id, id);
    } else if (this.env.modelId !== undefined && models.length === 1) {
      ids.set(this.env.modelId, models[0].id);
      models = [{ ...models[0], id: this.env.modelId }];
    } else {
      if (this.env.modelId !== undefined) logStderr('warn', 'FEDAI_MODEL_ID ignored: the http backend lists several models', { models: models.length });
      for (const m of models) ids.set(m.id, m.id);
    }
    return this.catalog.set(models, ids);
  }

  listModels(): Promise<ModelInfo[]> {
    return this.catalog.list(() => this.refreshModels());
  }

  maxParallel(): number {
    return this.env.maxParallel ?? 4;
  }

  private validateResponse(j: unknown, request: RunnerInferRequest, t0: number): InferResult {
    if (!j || typeof j !== 'object') throw invalid('body');
    const o = j as Record<string, unknown>;
    if (typeof o.output !== 'string') throw invalid('output');
    const u = o.usage as Record<string, unknown> | undefined;
    if (!u || typeof u !== 'object' || !isNonNegInt(u.inputTokens) || !isNonNegInt(u.outputTokens)) throw invalid('usage');
    if (o.requestId !== undefined && o.requestId !== request.requestId) throw invalid('requestId');
    const latencyMs = typeof o.latencyMs === 'number' && Number.isFinite(o.latencyMs) && o.latencyMs >= 0 ? Math.round(o.latencyMs) : Math.round(performance.now() - t0);
    const r: InferResult = {
      requestId: request.requestId,
      modelId: request.modelId,
      output: o.output,
      usage: { inputTokens: u.inputTokens, outputTokens: u.outputTokens },
      latencyMs,
    };
    if (o.finishReason === 'stop' || o.finishReason === 'length') r.finishReason = o.finishReason;
    return r;
  }

  async infer(request: RunnerInferRequest, ctx: InferContext): Promise<InferResult> {
    validateInferRequest(request);
    const { backendId } = this.catalog.resolve(request);
    this.conn.ensureUp();
    const stream = ctx.onDelta !== undefined;
    const t0 = performance.now();
    let deltas = 0;
    const partial = (): Usage => ({ inputTokens: estimateTokens(request.prompt), outputTokens: deltas });
    try {
      const res = await this.conn.client.request({
        method: 'POST',
        path: '/infer',
        json: backendInferBody(request, backendId, stream),
        signal: ctx.signal,
        traceparent: ctx.traceparent,
        timeoutMs: this.env.inferTimeoutMs,
        accept: stream ? 'text/event-stream, application/json' : 'application/json',
      });
      if (!res.ok) throw mapBackendError(res.status, await res.jsonOrUndefined(), partial());
      if (!res.isEventStream) {
        const r = this.validateResponse(await res.json(), request, t0);
        if (stream && r.output.length > 0) ctx.onDelta?.(r.output);
        return r;
      }
      let output = '';
      let ttftMs: number | undefined;
      let final: InferResult | undefined;
      for await (const ev of sseEvents(res)) {
        if (ev.kind === 'done') break;
        let j: Record<string, unknown>;
        try {
          j = JSON.parse(ev.data) as Record<string, unknown>;
        } catch {
          res.dispose();
          throw invalid('stream-event');
        }
        if (ev.kind === 'error' || j.error !== undefined) {
          res.dispose();
          throw mapBackendError(typeof j.code === 'number' ? j.code : 500, j, partial());
        }
        if (typeof j.delta === 'string') {
          if (j.delta.length === 0) continue;
          if (ttftMs === undefined) ttftMs = Math.round(performance.now() - t0);
          output += j.delta;
          deltas++;
          ctx.onDelta?.(j.delta);
          continue;
        }
        final = this.validateResponse(j, request, t0);
      }
      if (!final) throw new AdapterError('backend-error', 'http backend stream ended without a final response', { details: ['stream-truncated'], usage: partial() });
      if (final.output !== output) {
        // The final response is authoritative; the relayed deltas must agree with it.
        throw new AdapterError('backend-error', 'http backend stream deltas disagree with its final output', { details: ['invalid-response', 'delta-mismatch'], usage: final.usage });
      }
      if (ttftMs !== undefined) final.ttftMs = ttftMs;
      return final;
    } catch (err) {
      throw inferFailure(err, ctx.signal, partial, 'http backend');
    }
  }

  async estimate(request: RunnerInferRequest): Promise<EstimateResult> {
    validateInferRequest(request);
    const { backendId, info } = this.catalog.resolve(request);
    // Fallback (no /estimate, or fields it leaves out): chars/4, not exact, 50 ms.
    let inputTokens = estimateTokens(request.prompt);
    let exact = false;
    let latencyEstimateMs = 50;
    if (this.estimateAvailable) {
      this.conn.ensureUp();
      const res = await this.conn.client.request({ method: 'POST', path: '/estimate', json: backendInferBody(request, backendId, false), timeoutMs: 10_000 });
      const body = (await res.jsonOrUndefined()) as { inputTokens?: unknown; latencyEstimateMs?: unknown } | undefined;
      if (res.status === 404 || res.status === 405 || res.status === 501) {
        this.estimateAvailable = false;
      } else if (!res.ok) {
        throw mapBackendError(res.status, body);
      } else {
        if (isNonNegInt(body?.inputTokens)) {
          inputTokens = body.inputTokens;
          exact = true;
        }
        const lat = body?.latencyEstimateMs;
        if (typeof lat === 'number' && Number.isFinite(lat) && lat >= 0) latencyEstimateMs = Math.round(lat);
      }
    }
    return { inputTokens, exact, outputTokensMax: outputRoom(request.maxTokens, info?.contextWindow, inputTokens), latencyEstimateMs };
  }

  health(): Promise<HealthResult> {
    return probeBackendHealth(this.conn);
  }

  async stop(): Promise<void> {
    await this.conn.stop();
  }
}

export function createAdapter(env: NodeJS.ProcessEnv): RunnerAdapter {
  return new HttpAdapter(readBackendEnv(env));
}
