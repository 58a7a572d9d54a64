/**
 * The adapter interface every built-in runner implements (mock, http, llama_cpp, vllm). The host
 * (runner-host/host.ts) turns it into the JSON-RPC runner protocol; an adapter never sees stdio.
 *
 * Configuration reaches an adapter through the runner's environment, which the supervisor builds from
 * an allowlist (see supervisor/runners/runner-env.ts):
 *   FEDAI_ADAPTER          adapter name
 *   FEDAI_BACKEND_URL      backend base URL (http, llama_cpp, vllm)
 *   FEDAI_BACKEND_API_KEY  backend API key (sent only to the backend, never logged)
 *   FEDAI_MODEL_ID         overrides the advertised model id
 *   FEDAI_BACKEND_COMMAND  managed mode: backend command line the adapter starts and supervises
 *   FEDAI_EGRESS_PROXY     path of the egress proxy's Unix socket; when set, every backend request
 *                          goes through it (the sandbox gives the runner no other network)
 *   FEDAI_MAX_PARALLEL     optional cap on parallel inferences
 *   FEDAI_MOCK_TOKEN_DELAY_MS  mock only: delay between streamed tokens
 */
import type {
  EstimateResult,
  HealthResult,
  InferResult,
  ModelInfo,
  RunnerCapabilities,
  RunnerInferRequest,
  Usage,
} from '../supervisor/protocol/runner-protocol.js';
import type { ErrorCode } from '../supervisor/errors.js';

export interface InferContext {
  /** Aborted on $/cancelRequest, deadline or shutdown. Adapters abort their backend call on it. */
  readonly signal: AbortSignal;
  /** Present when the caller asked for streaming: call once per delta, in order. */
  readonly onDelta?: (delta: string) => void;
  readonly traceparent?: string;
}

export interface RunnerAdapter {
  readonly name: string;
  readonly version: string;
  readonly capabilities: RunnerCapabilities;
  /** Connects to (or, managed, starts) the backend; resolves when models can be listed. */
  start(): Promise<void>;
  listModels(): Promise<ModelInfo[]>;
  maxParallel(): number;
  infer(request: RunnerInferRequest, ctx: InferContext): Promise<InferResult>;
  estimate(request: RunnerInferRequest): Promise<EstimateResult>;
  /** Deep check: backend reachable and model loaded. */
  health(): Promise<HealthResult>;
  /** Stops a managed backend and releases resources. */
  stop(): Promise<void>;
}

/** What adapters throw: a catalogued code, safe details (no prompt, output or backend body) and partial usage. */
export class AdapterError extends Error {
  readonly code: ErrorCode;
  readonly details?: string[];
  readonly usage?: Usage;
  constructor(code: ErrorCode, message: string, opts: { details?: string[]; usage?: Usage; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AdapterError';
    this.code = code;
    if (opts.details) this.details = opts.details;
    if (opts.usage) this.usage = opts.usage;
  }
}

/** fed_AI's token estimate: 0 for empty text, else max(1, ceil(UTF-16 length / 4)). */
export function estimateTokens(text: string): number {
  return text.length === 0 ? 0 : Math.max(1, Math.ceil(text.length / 4));
}
