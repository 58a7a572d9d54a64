/**
 * What the three backend adapters share: environment parsing, request validation, the attached/managed
 * connection to the backend, safe error mapping and a latency model fed by observed timings.
 */
import { AdapterError } from '../adapter.js';
import type { HealthResult, ModelInfo, RunnerInferRequest, Usage } from '../../supervisor/protocol/runner-protocol.js';
import { BackendClient } from './backend-client.js';
import { ManagedBackend, parseCommandLine } from './managed-backend.js';

export const ADAPTER_VERSION = '0.1.0';

export interface BackendEnv {
  url?: string;
  apiKey?: string;
  modelId?: string;
  command?: string[];
  egressProxy?: string;
  maxParallel?: number;
  /**
   * Readiness wait, FEDAI_BACKEND_START_TIMEOUT_MS. Default 1 h: the supervisor's own spawn-to-initialize
   * deadline (NODE_RUNNER_START_TIMEOUT_MS) is the effective bound, so a large model is never cut short here.
   */
  startTimeoutMs: number;
  /** Whole-inference deadline, FEDAI_BACKEND_TIMEOUT_MS, default 600 s (the supervisor cancels earlier). */
  inferTimeoutMs: number;
  /** FEDAI_BACKEND_KEEP_ALIVE=1|0 overrides the adapter's default. */
  keepAlive?: boolean;
}

function intEnv(env: NodeJS.ProcessEnv, name: string, def: number | undefined, min = 0): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (!/^\d+$/.test(raw.trim())) throw new AdapterError('invalid-params', `${name} must be an integer`, { details: [name] });
  const n = Number(raw.trim());
  if (n < min) throw new AdapterError('invalid-params', `${name} must be ≥ ${min}`, { details: [name] });
  return n;
}

export function readBackendEnv(env: NodeJS.ProcessEnv): BackendEnv {
  const url = env.FEDAI_BACKEND_URL?.trim() || undefined;
  if (url !== undefined) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new AdapterError('invalid-params', 'FEDAI_BACKEND_URL is not a URL', { details: ['FEDAI_BACKEND_URL'] });
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new AdapterError('invalid-params', 'FEDAI_BACKEND_URL must be http or https', { details: ['FEDAI_BACKEND_URL'] });
    }
  }
  const ka = env.FEDAI_BACKEND_KEEP_ALIVE;
  return {
    url,
    apiKey: env.FEDAI_BACKEND_API_KEY || undefined,
    modelId: env.FEDAI_MODEL_ID?.trim() || undefined,
    command: env.FEDAI_BACKEND_COMMAND?.trim() ? parseCommandLine(env.FEDAI_BACKEND_COMMAND) : undefined,
    egressProxy: env.FEDAI_EGRESS_PROXY || undefined,
    maxParallel: intEnv(env, 'FEDAI_MAX_PARALLEL', undefined, 1),
    startTimeoutMs: intEnv(env, 'FEDAI_BACKEND_START_TIMEOUT_MS', 3_600_000, 1)!,
    inferTimeoutMs: intEnv(env, 'FEDAI_BACKEND_TIMEOUT_MS', 600_000, 1)!,
    keepAlive: ka === undefined || ka === '' ? undefined : ka === '1' || ka.toLowerCase() === 'true',
  };
}

/** Throws invalid-params for anything a backend must not receive (upstream defect 3: maxTokens < 1). */
export function validateInferRequest(r: RunnerInferRequest): void {
  const bad = (field: string): never => {
    throw new AdapterError('invalid-params', `invalid ${field}`, { details: [field] });
  };
  if (!r || typeof r !== 'object') bad('request');
  if (typeof r.requestId !== 'string' || r.requestId.length === 0) bad('requestId');
  if (typeof r.modelId !== 'string' || r.modelId.length === 0) bad('modelId');
  if (typeof r.prompt !== 'string') bad('prompt');
  if (!Number.isSafeInteger(r.maxTokens) || r.maxTokens < 1) bad('maxTokens');
  if (r.temperature !== undefined && (typeof r.temperature !== 'number' || !Number.isFinite(r.temperature) || r.temperature < 0)) bad('temperature');
  if (r.topP !== undefined && (typeof r.topP !== 'number' || !Number.isFinite(r.topP) || r.topP <= 0 || r.topP > 1)) bad('topP');
}

const SAFE_TOKEN = /^[A-Za-z0-9_.:-]{1,64}$/;

/** The backend's error `type` and `code` (never its message), from the shapes llama.cpp, vLLM and OpenAI use. */
export function errorTypeOf(body: unknown): { type?: string; code?: string; message?: string } {
  if (!body || typeof body !== 'object') return {};
  const b = body as Record<string, unknown>;
  const e = (b.error && typeof b.error === 'object' ? b.error : b) as Record<string, unknown>;
  const type = typeof e.type === 'string' && SAFE_TOKEN.test(e.type) ? e.type : typeof b.error === 'string' && SAFE_TOKEN.test(b.error) ? b.error : undefined;
  const code = (typeof e.code === 'string' || typeof e.code === 'number') && SAFE_TOKEN.test(String(e.code)) ? String(e.code) : undefined;
  const message = typeof e.message === 'string' ? e.message : undefined;
  return { type, code, message };
}

/** Safe details for a backend error: status, type, code (never the message or body). */
export function errorDetails(status: number | undefined, body: unknown): string[] {
  const { type, code } = errorTypeOf(body);
  const d: string[] = [];
  if (status !== undefined) d.push(`status=${status}`);
  if (type) d.push(`type=${type}`);
  if (code && code !== String(status)) d.push(`code=${code}`);
  return d;
}

const CONTEXT_PATTERNS = [
  /exceeds the available context size/i,
  /context shift is disabled/i,
  /maximum context length/i,
  /context length/i,
  /too many tokens/i,
];

export function looksLikeContextError(message: string | undefined): boolean {
  return message !== undefined && CONTEXT_PATTERNS.some((p) => p.test(message));
}

/**
 * Maps a non-2xx answer (or an in-band stream error) to an AdapterError. The message is inspected for a
 * context-size failure and a loading state but never copied.
 */
export function mapBackendError(status: number, body: unknown, usage?: Usage): AdapterError {
  const { type, message } = errorTypeOf(body);
  const details = errorDetails(status, body);
  const opts = (d: string[]) => ({ details: d, ...(usage ? { usage } : {}) });
  if (status === 503 || type === 'unavailable_error') {
    const loading = message !== undefined && /loading model/i.test(message);
    return new AdapterError('backend-unavailable', loading ? 'backend is loading its model' : 'backend is unavailable', opts(loading ? ['loading', ...details] : details));
  }
  if (status === 401 || status === 403 || type === 'authentication_error' || type === 'permission_error') {
    return new AdapterError('backend-error', 'backend rejected the credentials', opts(['authentication', ...details]));
  }
  if (looksLikeContextError(message)) {
    return new AdapterError('context-window-exceeded', 'prompt plus maxTokens exceed the backend context', opts(details));
  }
  return new AdapterError('backend-error', `backend answered ${status}`, opts(details));
}

/**
 * The backend an adapter talks to: attached (FEDAI_BACKEND_URL, through the egress proxy when one is
 * configured) or managed (FEDAI_BACKEND_COMMAND, loopback, never through the proxy).
 */
export class BackendConnection {
  readonly client: BackendClient;
  readonly managed: ManagedBackend | undefined;
  /** GET path that answers 200 when the backend is ready (managed start, readiness wait, health). */
  readonly healthPath: string;

  constructor(
    readonly env: BackendEnv,
    opts: { adapter: string; keepAliveDefault: boolean; healthPath: string },
  ) {
    this.healthPath = opts.healthPath;
    const keepAlive = env.keepAlive ?? opts.keepAliveDefault;
    if (env.command) {
      // The readiness probe carries the inference credentials, like every other request (defect 27).
      const probeHeaders: Record<string, string> = env.apiKey ? { authorization: `Bearer ${env.apiKey}` } : {};
      this.managed = new ManagedBackend({
        command: env.command,
        healthPath: opts.healthPath,
        startTimeoutMs: env.startTimeoutMs,
        probeHeaders,
      });
      const m = this.managed;
      this.client = new BackendClient({ baseUrl: () => m.url, apiKey: env.apiKey, keepAlive, timeoutMs: 30_000 });
    } else {
      if (!env.url) {
        throw new AdapterError('invalid-params', `${opts.adapter} needs FEDAI_BACKEND_URL or FEDAI_BACKEND_COMMAND`, { details: ['FEDAI_BACKEND_URL'] });
      }
      this.client = new BackendClient({ baseUrl: env.url, apiKey: env.apiKey, egressProxy: env.egressProxy, keepAlive, timeoutMs: 30_000 });
    }
  }

  /** Throws backend-unavailable while a managed backend is down or restarting. */
  ensureUp(): void {
    const m = this.managed;
    if (m && m.state !== 'ready') {
      throw new AdapterError('backend-unavailable', 'managed backend is not running', { details: [`backend-${m.state}`] });
    }
  }

  /** Managed: spawn and wait for readiness. Attached: nothing (the adapter polls health itself). */
  async startManaged(): Promise<void> {
    if (this.managed) await this.managed.start();
  }

  async stop(): Promise<void> {
    this.client.close();
    if (this.managed) await this.managed.stop();
  }
}

/** Polls `check` until it resolves; backend-unavailable errors wait and retry, other errors throw. */
export async function waitUntilReady(check: () => Promise<unknown>, deadlineMs: number, what: string): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let delay = 25;
  let last: AdapterError | undefined;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (!(err instanceof AdapterError) || err.code !== 'backend-unavailable') throw err;
      last = err;
    }
    if (Date.now() + delay > deadline) {
      throw new AdapterError('backend-unavailable', `${what} did not become ready in time`, {
        details: ['backend-start-timeout', ...(last?.details ?? [])],
      });
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
}

/**
 * Per-backend latency model: exponentially weighted prompt and generation speeds from the timings the
 * backend reports (or from wall-clock measurements), for estimate().latencyEstimateMs.
 */
export class LatencyModel {
  private promptMsPerToken: number;
  private genMsPerToken: number;
  private overheadMs: number;
  private samples = 0;

  constructor(defaults: { promptMsPerToken: number; genMsPerToken: number; overheadMs: number }) {
    this.promptMsPerToken = defaults.promptMsPerToken;
    this.genMsPerToken = defaults.genMsPerToken;
    this.overheadMs = defaults.overheadMs;
  }

  observe(o: { promptTokens?: number; promptMs?: number; genTokens?: number; genMs?: number }): void {
    const a = this.samples === 0 ? 1 : 0.2;
    let used = false;
    if (o.promptTokens && o.promptTokens > 0 && o.promptMs !== undefined && o.promptMs >= 0 && Number.isFinite(o.promptMs)) {
      this.promptMsPerToken = (1 - a) * this.promptMsPerToken + a * (o.promptMs / o.promptTokens);
      used = true;
    }
    if (o.genTokens && o.genTokens > 0 && o.genMs !== undefined && o.genMs >= 0 && Number.isFinite(o.genMs) && o.genMs < 3_600_000) {
      this.genMsPerToken = (1 - a) * this.genMsPerToken + a * (o.genMs / o.genTokens);
      used = true;
    }
    if (used) this.samples++;
  }

  estimateMs(inputTokens: number, outputTokens: number): number {
    return Math.max(1, Math.ceil(this.overheadMs + inputTokens * this.promptMsPerToken + outputTokens * this.genMsPerToken));
  }
}

export function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** The output tokens that fit: maxTokens, capped by what the context window leaves after the prompt. */
export function outputRoom(maxTokens: number, contextWindow: number | undefined, inputTokens: number): number {
  return contextWindow === undefined ? maxTokens : Math.min(maxTokens, Math.max(0, contextWindow - inputTokens));
}

/**
 * What an adapter's infer() rejects with: request-cancelled once `signal` aborted; otherwise the error as
 * an AdapterError carrying usage (its own, else `partial()`), an unexpected one as `<what> request failed`.
 */
export function inferFailure(err: unknown, signal: AbortSignal, partial: () => Usage, what: string): AdapterError {
  if (signal.aborted) return new AdapterError('request-cancelled', 'inference cancelled', { usage: partial() });
  if (err instanceof AdapterError) {
    return err.usage ? err : new AdapterError(err.code, err.message, { details: err.details, usage: partial(), cause: err.cause });
  }
  return new AdapterError('backend-error', `${what} request failed`, { details: ['unexpected'], usage: partial(), cause: err });
}

/** Waits until the health path answers 200; 503 (loading) keeps waiting, other statuses fail the start. */
export function waitForBackendHealth(conn: BackendConnection, deadlineMs: number, what: string): Promise<void> {
  return waitUntilReady(
    async () => {
      const res = await conn.client.request({ method: 'GET', path: conn.healthPath, timeoutMs: 5_000 });
      const body = await res.jsonOrUndefined();
      if (res.status !== 200) throw mapBackendError(res.status, body);
    },
    deadlineMs,
    what,
  );
}

/**
 * The models a backend serves, as advertised (FEDAI_MODEL_ID may rename them) and as the backend
 * calls them. Keeps the last good list while the backend is briefly unavailable.
 */
export class ModelCatalog {
  private models: ModelInfo[] | undefined;
  private backendIds = new Map<string, string>();

  get current(): ModelInfo[] | undefined {
    return this.models;
  }

  /** Replaces the catalogue; `backendIds` maps advertised id → backend id. */
  set(models: ModelInfo[], backendIds: Map<string, string>): ModelInfo[] {
    this.models = models;
    this.backendIds = backendIds;
    return models;
  }

  /** A fresh list, or the last good one when the backend is momentarily unavailable. */
  async list(refresh: () => Promise<ModelInfo[]>): Promise<ModelInfo[]> {
    try {
      return await refresh();
    } catch (err) {
      if (this.models && err instanceof AdapterError && err.code === 'backend-unavailable') return this.models;
      throw err;
    }
  }

  /** The backend's id for a request's model; model-not-found / context-window-exceeded otherwise. */
  resolve(req: RunnerInferRequest): { backendId: string; info?: ModelInfo } {
    if (!this.models) return { backendId: req.modelId };
    const backendId = this.backendIds.get(req.modelId);
    const info = this.models.find((m) => m.id === req.modelId);
    if (!backendId || !info) throw new AdapterError('model-not-found', 'this runner does not serve the requested model', { details: ['modelId'] });
    if (req.maxTokens > info.contextWindow) {
      throw new AdapterError('context-window-exceeded', 'maxTokens exceeds the model context', { details: [`contextWindow=${info.contextWindow}`] });
    }
    return { backendId, info };
  }
}

/** The stable health detail for an adapter error, when it is one operators act on. */
function healthDetail(err: AdapterError): string | undefined {
  if (err.code === 'egress-not-allowed') return 'egress-not-allowed';
  if (err.details?.includes('authentication')) return 'authentication';
  if (err.details?.includes('loading')) return 'loading';
  return undefined;
}

/**
 * The health check every HTTP-backed adapter runs: a managed backend must be ready; GET the health path
 * with the inference credentials must answer 2xx; then `deep` (e.g. "the model is listed") decides.
 */
export async function probeBackendHealth(conn: BackendConnection, deep?: () => Promise<HealthResult>): Promise<HealthResult> {
  const m = conn.managed;
  if (m && m.state !== 'ready') return { ok: false, detail: `backend-${m.state}` };
  try {
    const res = await conn.client.request({ method: 'GET', path: conn.healthPath, timeoutMs: 5_000 });
    const body = await res.jsonOrUndefined();
    if (!res.ok) return { ok: false, detail: healthDetail(mapBackendError(res.status, body)) ?? errorDetails(res.status, body).join(' ') };
    return deep ? await deep() : { ok: true };
  } catch (err) {
    if (err instanceof AdapterError) return { ok: false, detail: healthDetail(err) ?? (err.details ?? [err.code]).join(' ') };
    return { ok: false, detail: 'unreachable' };
  }
}
