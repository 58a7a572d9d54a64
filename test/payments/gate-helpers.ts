/** Shared set-up for the payment-gate tests: identities, config, a capturing logger, receipts. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { configFrom } from '../../supervisor/config/load-config.js';
import type { EnvName } from '../../supervisor/config/env-spec.js';
import { signEnvelope, type Envelope } from '../../supervisor/crypto/envelope.js';
import { generateIdentity, type Identity } from '../../supervisor/crypto/keys.js';
import { FedaiError, type ErrorCode } from '../../supervisor/errors.js';
import { createLogger, type Logger } from '../../supervisor/observability/logger.js';
import { PaymentGate, type PaymentGateOptions } from '../../supervisor/payments/payment-gate.js';
import type { InferenceRequest, PaymentReceipt } from '../../supervisor/protocol/wire-types.js';

export const NODE_ID = 'node-test-1';

export class LogCapture {
  readonly lines: string[] = [];
  readonly logger: Logger;
  constructor() {
    this.logger = createLogger({ level: 'debug', destination: { write: (s: string) => void this.lines.push(s) } });
  }
  text(): string {
    return this.lines.join('');
  }
}

export interface GateHarness {
  gate: PaymentGate;
  dataDir: string;
  failures: ErrorCode[];
  logs: LogCapture;
  node: Identity;
  reopen(extra?: Partial<PaymentGateOptions>): Promise<PaymentGate>;
  cleanup(): Promise<void>;
}

export async function openGate(env: Partial<Record<EnvName, string>> = {}, extra: Partial<PaymentGateOptions> = {}): Promise<GateHarness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'fedai-gate-'));
  const node = generateIdentity();
  const failures: ErrorCode[] = [];
  const logs = new LogCapture();
  const config = configFrom({ NODE_REQUIRE_PAYMENT: 'true', NODE_ID, ...env });
  const opts = (): PaymentGateOptions => ({ config, node: { nodeId: NODE_ID, identity: node }, dataDir, logger: logs.logger, onFailure: (c) => failures.push(c), ...extra });
  const h: GateHarness = {
    gate: await PaymentGate.open(opts()),
    dataDir,
    failures,
    logs,
    node,
    async reopen(more = {}) {
      await h.gate.close();
      h.gate = await PaymentGate.open({ ...opts(), ...more });
      return h.gate;
    },
    async cleanup() {
      await h.gate.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return h;
}

export function inferenceRequest(over: Partial<InferenceRequest> = {}): InferenceRequest {
  return { requestId: `req-${randomUUID()}`, modelId: 'mock-1', prompt: 'x'.repeat(40), maxTokens: 10, ...over };
}

export function receipt(
  client: Identity,
  req: InferenceRequest,
  over: Partial<PaymentReceipt> & Record<string, unknown> = {},
  opts: { nonce?: string; ts?: number } = {},
): Envelope<PaymentReceipt> {
  const payload = { requestId: req.requestId, payeeType: 'node', payeeId: NODE_ID, amountSats: 100, paidAtMs: Date.now(), ...over } as PaymentReceipt;
  for (const k of Object.keys(payload) as (keyof PaymentReceipt)[]) if (payload[k] === undefined) delete payload[k];
  return signEnvelope(payload, client, opts);
}

export function withReceipts(req: InferenceRequest, ...receipts: Envelope<PaymentReceipt>[]): InferenceRequest {
  return { ...req, paymentReceipts: receipts };
}

/** Runs fn and returns the FedaiError it threw (fails the test when it did not throw one). */
export async function rejection(fn: () => Promise<unknown>): Promise<FedaiError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof FedaiError) return err;
    throw new Error(`expected a FedaiError, got ${String(err)}`);
  }
  throw new Error('expected a rejection, but the call succeeded');
}

export function cleanupDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
