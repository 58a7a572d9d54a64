/**
 * The one error catalogue. Every failure the node reports — over HTTP, over JSON-RPC from a runner,
 * or from the CLI — has a stable kebab-case code here, mapped to an HTTP status and a JSON-RPC code.
 * Codes that fed_AI routers and SDKs already know keep upstream's spelling and status
 * (../shared/spec/fedai-wire.md §5, §8). The table is pinned by test/errors.test.ts.
 *
 * Body on the wire: {"error": code, "details"?: [...]}.
 */

export interface ErrorSpec {
  /** HTTP status the node answers with. */
  readonly status: number;
  /** JSON-RPC error code used between supervisor and runners. */
  readonly rpc: number;
  /** One-line meaning, for docs and logs. */
  readonly message: string;
  /** True when the caller may retry the same request later (Retry-After is set where known). */
  readonly retryable?: boolean;
}

// JSON-RPC code ranges: -32700..-32600 are JSON-RPC's own; -32800 is LSP's RequestCancelled;
// -32000..-32099 are ours ("server error" range reserved for implementations).
export const ERRORS = {
  // request framing
  'payload-too-large': { status: 413, rpc: -32001, message: 'request body exceeds NODE_MAX_REQUEST_BYTES' },
  'empty-body': { status: 400, rpc: -32600, message: 'request body is empty' },
  'invalid-json': { status: 400, rpc: -32700, message: 'request body is not JSON' },
  'unsupported-media-type': { status: 415, rpc: -32600, message: 'request body must be application/json' },
  'not-found': { status: 404, rpc: -32601, message: 'no such route' },
  'method-not-allowed': { status: 405, rpc: -32601, message: 'method not allowed on this route' },
  // envelope and identity
  'invalid-envelope': { status: 400, rpc: -32602, message: 'body is not a valid signed envelope' },
  'invalid-key-id': { status: 400, rpc: -32602, message: 'keyId must be an npub' },
  'invalid-signature': { status: 401, rpc: -32003, message: 'envelope signature does not verify' },
  'router-not-allowed': { status: 401, rpc: -32003, message: 'signer is not an allowed router' },
  'router-blocked': { status: 403, rpc: -32003, message: 'signer is on the block list' },
  'rate-limited': { status: 429, rpc: -32005, message: 'too many requests from this signer', retryable: true },
  'ts-out-of-window': { status: 400, rpc: -32004, message: 'envelope ts is outside the replay window' },
  'nonce-reused': { status: 400, rpc: -32004, message: 'nonce already used by this signer' },
  // request limits
  'prompt-too-large': { status: 413, rpc: -32001, message: 'prompt exceeds NODE_MAX_PROMPT_BYTES' },
  'max-tokens-exceeded': { status: 400, rpc: -32602, message: 'maxTokens exceeds NODE_MAX_TOKENS or the model limit' },
  'context-window-exceeded': { status: 400, rpc: -32602, message: 'prompt tokens plus maxTokens exceed the model context window' },
  'model-not-found': { status: 404, rpc: -32602, message: 'no ready runner serves this model' },
  // payments
  'payment-required': { status: 402, rpc: -32010, message: 'a payment receipt for this node is required' },
  'invalid-payment-receipt': { status: 400, rpc: -32011, message: 'payment receipt envelope is invalid' },
  'invalid-payment-receipt-signature': { status: 401, rpc: -32011, message: 'payment receipt signature does not verify' },
  'payment-amount-invalid': { status: 400, rpc: -32011, message: 'receipt amount is not a positive integer' },
  'payment-request-mismatch': { status: 400, rpc: -32011, message: 'receipt requestId does not match the request' },
  'payment-payee-mismatch': { status: 400, rpc: -32011, message: 'receipt is not addressed to this node' },
  'payment-insufficient': { status: 402, rpc: -32011, message: 'receipt amount is below the price of this request' },
  'payment-split-total-mismatch': { status: 400, rpc: -32011, message: 'receipt splits do not add up to amountSats' },
  'router-fee-exceeds-cap': { status: 400, rpc: -32011, message: 'router fee exceeds the configured cap' },
  'payment-receipt-future': { status: 400, rpc: -32011, message: 'receipt paidAtMs is in the future' },
  'payment-receipt-expired': { status: 400, rpc: -32011, message: 'receipt is older than NODE_RECEIPT_MAX_AGE_MS' },
  'payment-receipt-reused': { status: 409, rpc: -32011, message: 'receipt or payment hash was already spent' },
  'preimage-required': { status: 400, rpc: -32011, message: 'a payment preimage is required' },
  'preimage-mismatch': { status: 400, rpc: -32011, message: 'sha256(preimage) does not equal paymentHash' },
  'payment-proof-missing': { status: 400, rpc: -32011, message: 'receipt carries no invoice, paymentHash or preimage' },
  'invoice-invalid': { status: 400, rpc: -32011, message: 'invoice does not decode or does not match the receipt' },
  'invoice-expired': { status: 400, rpc: -32011, message: 'invoice expired before it was paid' },
  'payment-unsettled': { status: 400, rpc: -32011, message: 'the Lightning backend reports the payment as not settled' },
  'payment-verify-failed': { status: 400, rpc: -32011, message: 'the payment verifier rejected the receipt' },
  'payment-backend-unavailable': { status: 503, rpc: -32012, message: 'the Lightning backend did not answer', retryable: true },
  // capacity and runners
  'capacity-exhausted': { status: 429, rpc: -32005, message: 'node is at capacity', retryable: true },
  'runner-unavailable': { status: 503, rpc: -32006, message: 'no runner is ready', retryable: true },
  'runner-timeout': { status: 504, rpc: -32007, message: 'runner did not answer within NODE_RUNNER_TIMEOUT_MS' },
  'runner-crashed': { status: 502, rpc: -32008, message: 'runner exited during the request', retryable: true },
  'runner-killed': { status: 502, rpc: -32008, message: 'runner was killed by the watchdog', retryable: true },
  'runner-error': { status: 502, rpc: -32009, message: 'runner reported an error' },
  'runner-protocol-error': { status: 502, rpc: -32009, message: 'runner broke the protocol' },
  'backend-unavailable': { status: 503, rpc: -32013, message: 'the runner backend is not reachable or still loading', retryable: true },
  'backend-error': { status: 502, rpc: -32014, message: 'the runner backend returned an error' },
  'request-cancelled': { status: 499, rpc: -32800, message: 'request was cancelled' },
  'invalid-params': { status: 400, rpc: -32602, message: 'invalid parameters' },
  'method-not-found': { status: 404, rpc: -32601, message: 'no such method' },
  'protocol-version-mismatch': { status: 502, rpc: -32015, message: 'runner speaks an incompatible protocol major version' },
  // sandbox
  'sandbox-layer-missing': { status: 503, rpc: -32020, message: 'a sandbox layer the profile requires is not available on this host' },
  'sandbox-runner-not-allowed': { status: 503, rpc: -32020, message: 'runner is not in NODE_SANDBOX_ALLOWED_RUNNERS' },
  'egress-not-allowed': { status: 403, rpc: -32021, message: 'destination is not in NODE_SANDBOX_ALLOWED_ENDPOINTS' },
  // node state
  'node-draining': { status: 503, rpc: -32006, message: 'node is shutting down', retryable: true },
  'node-private-key-missing': { status: 500, rpc: -32603, message: 'node has no private key' },
  'service-unconfigured': { status: 503, rpc: -32603, message: 'node configuration is incomplete' },
  'config-invalid': { status: 500, rpc: -32603, message: 'configuration is invalid' },
  'metering-write-failed': { status: 500, rpc: -32603, message: 'metering record could not be persisted' },
  'internal-error': { status: 500, rpc: -32603, message: 'internal error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERRORS, code);
}

/** The one error class. `details` go to the client; `cause` stays internal. */
export class FedaiError extends Error {
  readonly code: ErrorCode;
  readonly details?: unknown[];
  /** Seconds, for Retry-After. */
  readonly retryAfterS?: number;
  /** Extra fields merged into the JSON body (e.g. the 402's `payment`). */
  readonly extra?: Record<string, unknown>;
  /** Partial usage a runner reported for a failed or cancelled inference (for metering; never sent). */
  readonly usage?: { inputTokens: number; outputTokens: number };

  constructor(
    code: ErrorCode,
    opts: {
      details?: unknown[];
      cause?: unknown;
      retryAfterS?: number;
      extra?: Record<string, unknown>;
      message?: string;
      usage?: { inputTokens: number; outputTokens: number };
    } = {},
  ) {
    super(opts.message ?? `${code}: ${ERRORS[code].message}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'FedaiError';
    this.code = code;
    if (opts.details !== undefined) this.details = opts.details;
    if (opts.retryAfterS !== undefined) this.retryAfterS = opts.retryAfterS;
    if (opts.extra !== undefined) this.extra = opts.extra;
    if (opts.usage !== undefined) this.usage = opts.usage;
  }

  get status(): number {
    return ERRORS[this.code].status;
  }

  get rpcCode(): number {
    return ERRORS[this.code].rpc;
  }

  /** `{"error": code, "details"?: [...], ...extra}` */
  toBody(): Record<string, unknown> {
    const body: Record<string, unknown> = { ...(this.extra ?? {}) };
    body.error = this.code;
    if (this.details !== undefined && this.details.length > 0) body.details = this.details;
    return body;
  }
}

/** Normalises anything thrown into a FedaiError; unknown errors become internal-error (never leak messages). */
export function toFedaiError(err: unknown): FedaiError {
  if (err instanceof FedaiError) return err;
  return new FedaiError('internal-error', { cause: err });
}

/** Token usage as a runner reports it: two non-negative safe integers (anything else is not trusted). */
export function isUsage(u: unknown): u is { inputTokens: number; outputTokens: number } {
  if (!u || typeof u !== 'object') return false;
  const { inputTokens, outputTokens } = u as { inputTokens?: unknown; outputTokens?: unknown };
  return Number.isSafeInteger(inputTokens) && Number.isSafeInteger(outputTokens) && (inputTokens as number) >= 0 && (outputTokens as number) >= 0;
}

function usageOf(data: unknown): { inputTokens: number; outputTokens: number } | undefined {
  const u = data && typeof data === 'object' ? (data as { usage?: unknown }).usage : undefined;
  if (!isUsage(u)) return undefined;
  return { inputTokens: u.inputTokens, outputTokens: u.outputTokens };
}

/**
 * Reverse lookup for errors that arrive over JSON-RPC: prefers the code carried in error.data and keeps
 * the runner's partial usage. Details from a runner are kept only when they are short strings.
 */
export function fromRpcError(rpcCode: number, data: unknown): FedaiError {
  const usage = usageOf(data);
  const base = usage ? { usage } : {};
  if (data && typeof data === 'object' && isErrorCode((data as { code?: unknown }).code)) {
    const d = data as { code: ErrorCode; details?: unknown[] };
    const details = Array.isArray(d.details)
      ? d.details.filter((x): x is string => typeof x === 'string').map((x) => x.slice(0, 200)).slice(0, 8)
      : undefined;
    return new FedaiError(d.code, details && details.length > 0 ? { ...base, details } : base);
  }
  if (rpcCode === -32800) return new FedaiError('request-cancelled', base);
  if (rpcCode === -32602) return new FedaiError('invalid-params', base);
  if (rpcCode === -32601) return new FedaiError('method-not-found', base);
  return new FedaiError('runner-error', base);
}

export function isRetryable(code: ErrorCode): boolean {
  return (ERRORS[code] as ErrorSpec).retryable === true;
}
