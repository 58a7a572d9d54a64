/**
 * fed_AI wire types (../shared/spec/fedai-wire.md §4). The JSON Schemas in schemas/ are normative;
 * test/protocol/wire-schemas.test.ts checks these interfaces against them field by field.
 */
import type { Envelope } from '../crypto/envelope.js';

export type JobType = 'EMBEDDING' | 'RERANK' | 'CLASSIFY' | 'MODERATE' | 'TOOL_CALL' | 'SUMMARISE' | 'GEN_CHUNK';
export type PayeeType = 'node' | 'router';
export type SplitRole = 'node-inference' | 'router-fee' | 'other';

export interface Pricing {
  unit: 'token' | 'second';
  inputRate: number;
  outputRate: number;
  currency: string;
}

export interface Capability {
  modelId: string;
  contextWindow: number;
  maxTokens: number;
  pricing: Pricing;
  latencyEstimateMs?: number;
  jobTypes?: JobType[];
}

export interface ModelInfoWire {
  id: string;
  family?: string;
  version?: string;
  contextWindow: number;
}

export interface NodeDescriptor {
  nodeId: string;
  keyId: string;
  endpoint: string;
  region?: string;
  capacity: { maxConcurrent: number; currentLoad: number };
  capabilities: Capability[];
  trustScore?: number;
  lastHeartbeatMs?: number;
}

export interface PaymentSplit {
  payeeType: PayeeType;
  payeeId: string;
  amountSats: number;
  role?: SplitRole;
}

export interface PaymentRequest {
  requestId: string;
  payeeType: PayeeType;
  payeeId: string;
  amountSats: number;
  invoice: string;
  expiresAtMs: number;
  paymentHash?: string;
  splits?: PaymentSplit[];
  metadata?: Record<string, string | number>;
}

export interface PaymentReceipt {
  requestId: string;
  payeeType: PayeeType;
  payeeId: string;
  amountSats: number;
  paidAtMs: number;
  paymentHash?: string;
  preimage?: string;
  invoice?: string;
  splits?: PaymentSplit[];
}

export interface InferenceRequest {
  requestId: string;
  modelId: string;
  prompt: string;
  maxTokens: number;
  temperature?: number;
  topP?: number;
  jobType?: JobType;
  metadata?: Record<string, string>;
  paymentReceipts?: Envelope<PaymentReceipt>[];
}

export interface InferenceResponse {
  requestId: string;
  modelId: string;
  output: string;
  usage: { inputTokens: number; outputTokens: number };
  latencyMs: number;
}

export interface MeteringRecord {
  requestId: string;
  nodeId: string;
  modelId: string;
  promptHash: string;
  inputTokens: number;
  outputTokens: number;
  wallTimeMs: number;
  bytesIn: number;
  bytesOut: number;
  ts: number;
  /** fedai-node extension: how the request ended (absent = ok). */
  outcome?: 'ok' | 'error' | 'cancelled' | 'timeout';
  /** fedai-node extension: payment hash or receipt id the usage was paid with. */
  paymentRef?: string;
}

export interface StreamChunk {
  requestId: string;
  modelId: string;
  delta: string;
  index: number;
}

export interface StreamFinal {
  response: Envelope<InferenceResponse>;
  metering: Envelope<MeteringRecord>;
}

export interface ErrorBody {
  error: string;
  details?: unknown;
}
