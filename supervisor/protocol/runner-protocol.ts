/**
 * The runner protocol's TypeScript face: method names, message shapes and codes. The normative
 * definition is schemas/runner/*.json plus docs/runner-protocol.md; test/protocol/runner-schemas.test.ts
 * keeps this file and those schemas in step. JSON-RPC 2.0 over stdio, vscode-jsonrpc framing
 * (Content-Length headers).
 */

/** Major must match; minor may differ (additive). */
export const RUNNER_PROTOCOL_VERSION = '1.0';

export const RunnerMethod = {
  initialize: 'initialize',
  listModels: 'listModels',
  infer: 'infer',
  estimate: 'estimate',
  health: 'health',
  shutdown: 'shutdown',
  /** notification, supervisor → runner, after the shutdown response: exit now. */
  exit: 'exit',
  /** notification, runner → supervisor: one streamed delta of an `infer` with stream=true. */
  inferChunk: 'infer/chunk',
  /** notification, runner → supervisor: a structured log line (never a prompt or an output). */
  log: 'log',
} as const;

export interface ModelInfo {
  id: string;
  contextWindow: number;
  maxTokens: number;
  family?: string;
  version?: string;
}

export interface InitializeParams {
  protocolVersion: string;
  supervisor: { name: string; version: string };
  runnerId: string;
  traceparent?: string;
}

export interface RunnerCapabilities {
  streaming: boolean;
  estimate: boolean;
  cancellation: boolean;
}

export interface InitializeResult {
  protocolVersion: string;
  runner: { name: string; version: string };
  models: ModelInfo[];
  limits: { maxParallel: number };
  capabilities: RunnerCapabilities;
}

export interface ListModelsResult {
  models: ModelInfo[];
}

/** What a runner receives: the inference fields only — never receipts, metadata or keys. */
export interface RunnerInferRequest {
  requestId: string;
  modelId: string;
  prompt: string;
  maxTokens: number;
  temperature?: number;
  topP?: number;
  jobType?: string;
}

export interface InferParams {
  request: RunnerInferRequest;
  /** When true, the runner sends `infer/chunk` notifications before the result. */
  stream?: boolean;
  /** Supervisor-chosen id carried by every chunk of this call (unique among in-flight calls). */
  streamId?: string;
  /** W3C trace context of the supervisor's span. */
  traceparent?: string;
  /** Absolute deadline (epoch ms) the runner may use to stop early. */
  deadlineMs?: number;
}

export interface Usage {
  inputTokens: number;
  outputTokens: number;
}

export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';

export interface InferResult {
  requestId: string;
  modelId: string;
  output: string;
  usage: Usage;
  latencyMs: number;
  finishReason?: FinishReason;
  /** Time to first token as the runner measured it (ms). */
  ttftMs?: number;
}

export interface InferChunkParams {
  streamId: string;
  index: number;
  delta: string;
}

export interface EstimateParams {
  request: RunnerInferRequest;
}

export interface EstimateResult {
  inputTokens: number;
  /** True when inputTokens came from the model's tokenizer, false for the chars/4 estimate. */
  exact: boolean;
  outputTokensMax: number;
  latencyEstimateMs: number;
}

export interface HealthResult {
  ok: boolean;
  detail?: string;
  /** How long the probe waited for the runner's work loop (ms). */
  loopLatencyMs?: number;
}

export interface LogParams {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  fields?: Record<string, string | number | boolean>;
}

/** `error.data` of every JSON-RPC error a runner returns. `code` is from supervisor/errors.ts. */
export interface RunnerErrorData {
  code: string;
  details?: string[];
  /** Partial usage for cancelled or failed inferences. */
  usage?: Usage;
}

/** JSON-RPC codes used on this protocol (see also ERRORS[*].rpc). */
export const RpcCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  RequestCancelled: -32800,
} as const;

export function protocolMajor(v: string): number {
  const m = /^(\d+)\.(\d+)$/.exec(v);
  return m ? Number(m[1]) : NaN;
}
