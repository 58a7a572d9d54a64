/**
 * MeteringRecord construction (../shared/spec/fedai-wire.md §9). The record holds the prompt's SHA-256
 * only — never the prompt or the output. Byte counts are UTF-8 lengths.
 *
 * `outcome` is a fedai-node extension: it is present only when the request did NOT end ok, so a
 * successful request produces exactly upstream's field set (routers and SDKs that validate the record
 * strictly see nothing new). Absent `outcome` means 'ok'.
 */
import { createHash } from 'node:crypto';
import type { InferenceRequest, MeteringRecord } from '../protocol/wire-types.js';

export type MeteringOutcome = NonNullable<MeteringRecord['outcome']>;
export const METERING_OUTCOMES: readonly MeteringOutcome[] = ['ok', 'error', 'cancelled', 'timeout'];

export interface BuildMeteringRecordInput {
  /** Only requestId and prompt are read. */
  request: Pick<InferenceRequest, 'requestId' | 'prompt'>;
  nodeId: string;
  /** The model that served the request (the runner's answer, or the requested id on failure). */
  modelId: string;
  inputTokens: number;
  outputTokens: number;
  wallTimeMs: number;
  /** The output text (only its UTF-8 length is recorded). Empty on failure. */
  output: string;
  outcome: MeteringOutcome;
  /** Payment hash or receipt id the usage was paid with. */
  paymentRef?: string;
  /** Epoch ms. */
  now: number;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function count(name: string, n: number): number {
  if (!Number.isFinite(n) || n < 0) throw new TypeError(`${name} must be a finite number ≥ 0, got ${n}`);
  return n;
}

export function buildMeteringRecord(input: BuildMeteringRecordInput): MeteringRecord {
  const record: MeteringRecord = {
    requestId: input.request.requestId,
    nodeId: input.nodeId,
    modelId: input.modelId,
    promptHash: sha256Hex(input.request.prompt),
    inputTokens: count('inputTokens', input.inputTokens),
    outputTokens: count('outputTokens', input.outputTokens),
    wallTimeMs: count('wallTimeMs', input.wallTimeMs),
    bytesIn: Buffer.byteLength(input.request.prompt, 'utf8'),
    bytesOut: Buffer.byteLength(input.output, 'utf8'),
    ts: input.now,
  };
  if (input.outcome !== 'ok') record.outcome = input.outcome;
  if (input.paymentRef !== undefined) record.paymentRef = input.paymentRef;
  return record;
}
