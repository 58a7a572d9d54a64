/**
 * The one logger: pino, JSON lines. Redaction is by an explicit key list (not a regex that also hides
 * keyId or inputTokens, upstream defect 24) and is applied at any depth, so a prompt nested inside an
 * error's context is still scrubbed. Nothing in the node logs a prompt or an output on purpose; this is
 * the belt to that braces, and test/observability/log-canary.test.ts proves it end to end.
 */
import pino, { type Logger, type DestinationStream } from 'pino';

export const REDACTED_KEYS: ReadonlySet<string> = new Set([
  'prompt',
  'output',
  'delta',
  'content',
  'text',
  'messages',
  'completion',
  'stderr',
  'stderrTail',
  'body',
  'privateKey',
  'secretKey',
  'nsec',
  'apiKey',
  'authorization',
  'cookie',
  'password',
  'secret',
  'token',
  'macaroon',
  'rune',
  'preimage',
  'invoice',
  'paymentRequest',
  'paymentReceipts',
  'receipt',
  'sig',
]);

const CENSOR = '[redacted]';

export function scrub(value: unknown, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  if (value instanceof Error) {
    return scrub({ type: value.name, message: value.message, code: (value as { code?: unknown }).code }, depth + 1);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = REDACTED_KEYS.has(k) ? CENSOR : scrub(v, depth + 1);
  }
  return out;
}

export interface LoggerOptions {
  level?: string;
  name?: string;
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? process.env.LOG_LEVEL ?? 'info';
  return pino(
    {
      name: opts.name ?? 'fedai-node',
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => scrub(obj) as Record<string, unknown>,
      },
      serializers: { err: (e: unknown) => scrub(e) },
    },
    opts.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

export type { Logger };
