/**
 * What the /infer pipeline needs from the rest of the node, as narrow interfaces. The real
 * implementations are RunnerManager (supervisor/runners), NonceStore (supervisor/replay),
 * PaymentGate (supervisor/payments), MeteringSpool (supervisor/metering) and NodeMetrics
 * (supervisor/observability); supervisor/node.ts wires them.
 */
import type { Envelope } from '../../crypto/envelope.js';
import type { ErrorCode } from '../../errors.js';
import type {
  EstimateResult,
  InferResult,
  ModelInfo,
  RunnerCapabilities,
  RunnerInferRequest,
} from '../../protocol/runner-protocol.js';
import type { InferenceRequest, MeteringRecord } from '../../protocol/wire-types.js';

export interface RunnerInferOptions {
  stream?: boolean;
  onChunk?: (chunk: { index: number; delta: string }) => void;
  signal?: AbortSignal;
  traceparent?: string;
}

export interface RunnerPort {
  readonly ready: boolean;
  listModels(): ModelInfo[];
  capabilities(): RunnerCapabilities | undefined;
  infer(request: RunnerInferRequest, opts: RunnerInferOptions): Promise<InferResult>;
  estimate(request: RunnerInferRequest): Promise<EstimateResult>;
}

export type ReplayVerdict = null | 'ts-out-of-window' | 'nonce-reused';

export interface ReplayPort {
  check(keyId: string, nonce: string, ts: number): ReplayVerdict;
  commit(keyId: string, nonce: string, ts: number): ReplayVerdict;
  /** Resolves once every nonce committed so far is on disk; never rejects. */
  durable(): Promise<void>;
}

export interface PaymentTicketPort {
  readonly reference: string;
  readonly amountSats: number;
  commit(): Promise<void>;
  /** Resolves once the spend is on disk; never rejects. */
  durable(): Promise<void>;
}

export interface PaymentPort {
  readonly required: boolean;
  check(request: InferenceRequest, opts: { estimate?: { inputTokens: number; exact: boolean } }): Promise<PaymentTicketPort>;
}

export interface SpoolPort {
  append(record: Envelope<MeteringRecord>): Promise<void>;
}

export interface InferMetricsPort {
  ttft(seconds: number): void;
  tokens(model: string, inputTokens: number, outputTokens: number): void;
  metering(outcome: string): void;
}

export interface TracePort {
  /** Runs fn inside a child span of the current request span. */
  child<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /** Sets attributes on the current request span (never content). */
  annotate(attrs: Record<string, string | number | boolean>): void;
  traceparent(): string | undefined;
}

export const NO_TRACE: TracePort = {
  child: (_name, fn) => fn(),
  annotate: () => {},
  traceparent: () => undefined,
};

export type FailureReason = ErrorCode;
