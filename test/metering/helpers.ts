import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, type Logger } from '../../supervisor/observability/logger.js';
import { parseIdentity, type Identity } from '../../supervisor/crypto/keys.js';
import { signEnvelope, type Envelope } from '../../supervisor/crypto/envelope.js';
import { buildMeteringRecord } from '../../supervisor/metering/metering-record.js';
import type { MeteringRecord } from '../../supervisor/protocol/wire-types.js';

export const nodeIdentity: Identity = parseIdentity('11'.repeat(32));
export const otherIdentity: Identity = parseIdentity('33'.repeat(32));

export function captureLogger(): { logger: Logger; lines: () => Array<Record<string, unknown>> } {
  const raw: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (s: string) => void raw.push(s) } });
  return { logger, lines: () => raw.map((s) => JSON.parse(s) as Record<string, unknown>) };
}

export async function tempDir(prefix = 'fedai-metering-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

let counter = 0;
export function signedRecord(opts: { modelId?: string; signer?: Identity; inputTokens?: number; outputTokens?: number } = {}): Envelope<MeteringRecord> {
  counter++;
  return signEnvelope(
    buildMeteringRecord({
      request: { requestId: `req-${counter}`, prompt: `prompt ${counter}` },
      nodeId: 'node-1',
      modelId: opts.modelId ?? 'model-a',
      inputTokens: opts.inputTokens ?? 3,
      outputTokens: opts.outputTokens ?? 7,
      wallTimeMs: 11,
      output: 'some output',
      outcome: 'ok',
      now: Date.now(),
    }),
    opts.signer ?? nodeIdentity,
  );
}
