/**
 * Every environment variable the node reads, in one table: name, type, default and meaning.
 * README's configuration table is checked against this file by test/config/env-spec.test.ts.
 * An empty string counts as unset (as upstream's current protocol does). A value that does not parse
 * stops start-up with a message naming the variable and what it expects — never a silent fallback.
 */

export type VarKind = 'string' | 'int' | 'number' | 'bool' | 'url' | 'enum' | 'csv' | 'path';

export interface VarSpec {
  readonly kind: VarKind;
  readonly doc: string;
  /** Default as text (what the README shows); parsed like a user value. Absent = unset. */
  readonly default?: string;
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
  readonly secret?: boolean;
  readonly group: string;
}

const v = <const S extends VarSpec>(s: S) => s;

export const ENV_SPEC = {
  // identity and endpoints
  NODE_ENV: v({ kind: 'enum', values: ['development', 'production', 'test'], default: 'development', group: 'node', doc: '`production` generates no keys and fails closed on missing keys or router trust' }),
  NODE_ID: v({ kind: 'string', default: 'node-1', group: 'node', doc: 'node id advertised to routers; receipts may name it as payee' }),
  NODE_KEY_ID: v({ kind: 'string', group: 'node', doc: 'optional npub; when set it must equal the npub of NODE_PRIVATE_KEY_PEM' }),
  NODE_PRIVATE_KEY_PEM: v({ kind: 'string', secret: true, group: 'node', doc: 'node signing key: nsec, 64 hex or secp256k1 PEM (SEC1/PKCS#8). Dev: generated under NODE_DATA_DIR' }),
  NODE_PRIVATE_KEY_FILE: v({ kind: 'path', group: 'node', doc: 'file holding the node key (alternative to NODE_PRIVATE_KEY_PEM; use with systemd LoadCredential)' }),
  NODE_HOST: v({ kind: 'string', default: '127.0.0.1', group: 'node', doc: 'address the HTTP server binds' }),
  NODE_PORT: v({ kind: 'int', default: '8081', min: 0, max: 65535, group: 'node', doc: 'HTTP port (0 = any free port)' }),
  NODE_ENDPOINT: v({ kind: 'url', group: 'node', doc: 'public URL advertised in heartbeats (default http://localhost:NODE_PORT)' }),
  NODE_DATA_DIR: v({ kind: 'path', default: './.fedai', group: 'node', doc: 'keys (dev), nonce and receipt stores, metering spool' }),
  // router trust
  ROUTER_ENDPOINT: v({ kind: 'url', group: 'router', doc: 'router base URL for heartbeats (unset = no heartbeat)' }),
  ROUTER_PUBLIC_KEY_PEM: v({ kind: 'string', group: 'router', doc: 'router public key: npub, 64 hex or secp256k1 SPKI PEM; trusted for /infer' }),
  ROUTER_KEY_ID: v({ kind: 'string', group: 'router', doc: 'router npub trusted for /infer (must match ROUTER_PUBLIC_KEY_PEM when both are set)' }),
  NODE_ROUTER_ALLOWLIST: v({ kind: 'csv', group: 'router', doc: 'more router npubs trusted for /infer' }),
  NODE_ROUTER_BLOCK: v({ kind: 'csv', group: 'router', doc: 'npubs always refused (403 router-blocked)' }),
  NODE_REPLAY_WINDOW_MS: v({ kind: 'int', default: '300000', min: 1000, max: 3600000, group: 'router', doc: 'accepted |now − ts| for signed envelopes' }),
  NODE_NONCE_STORE_MAX: v({ kind: 'int', default: '1000000', min: 1000, group: 'router', doc: 'most nonces remembered (oldest pruned first; expired ones always)' }),
  NODE_RATE_LIMIT_MAX: v({ kind: 'int', default: '0', min: 0, group: 'router', doc: 'requests per signer per window (0 = off)' }),
  NODE_RATE_LIMIT_WINDOW_MS: v({ kind: 'int', default: '60000', min: 1, group: 'router', doc: 'rate-limit window' }),
  // limits and capacity
  NODE_MAX_REQUEST_BYTES: v({ kind: 'int', default: '1048576', min: 1024, max: 67108864, group: 'limits', doc: 'largest accepted request body (413 payload-too-large)' }),
  NODE_MAX_PROMPT_BYTES: v({ kind: 'int', default: '262144', min: 1, group: 'limits', doc: 'largest prompt in UTF-8 bytes (413 prompt-too-large)' }),
  NODE_MAX_TOKENS: v({ kind: 'int', default: '4096', min: 1, group: 'limits', doc: 'largest maxTokens accepted (400 max-tokens-exceeded)' }),
  NODE_CAPACITY_MAX: v({ kind: 'int', default: '4', min: 1, max: 100000, group: 'limits', doc: 'concurrent inferences this node admits' }),
  NODE_CAPACITY_LOAD: v({ kind: 'int', default: '0', min: 0, group: 'limits', doc: 'external load counted against NODE_CAPACITY_MAX' }),
  NODE_CRYPTO_WORKERS: v({ kind: 'int', min: 0, max: 64, group: 'limits', doc: 'worker threads for signature checks and signing (0 = on the event loop; with at most one request in flight they run inline anyway); unset: 1 with the native Schnorr build, 2 with WebAssembly' }),
  NODE_SCHNORR_BACKEND: v({ kind: 'enum', values: ['auto', 'native', 'wasm'], default: 'auto', group: 'limits', doc: 'BIP-340 implementation: `native` libsecp256k1 (optional dependency bcrypto, built by npm ci; ~4× faster), `wasm` tiny-secp256k1, `auto` native when built' }),
  NODE_QUEUE_MAX: v({ kind: 'int', default: '64', min: 0, group: 'limits', doc: 'requests that may wait for a runner slot beyond the runner\'s parallelism' }),
  // runner
  NODE_RUNNER: v({ kind: 'enum', values: ['mock', 'http', 'llama_cpp', 'vllm', 'exec'], default: 'mock', group: 'runner', doc: 'runner adapter; `exec` runs NODE_RUNNER_EXEC (any language)' }),
  NODE_RUNNER_EXEC: v({ kind: 'string', group: 'runner', doc: 'command line of an external runner program (NODE_RUNNER=exec), as a JSON array or space-separated' }),
  NODE_RUNNER_URL: v({ kind: 'url', group: 'runner', doc: 'backend URL for http, llama_cpp and vllm runners' }),
  NODE_LLAMA_CPP_URL: v({ kind: 'url', group: 'runner', doc: 'llama.cpp server URL (overrides NODE_RUNNER_URL)' }),
  NODE_VLLM_URL: v({ kind: 'url', group: 'runner', doc: 'vLLM server URL (overrides NODE_RUNNER_URL)' }),
  NODE_RUNNER_COMMAND: v({ kind: 'string', group: 'runner', doc: 'managed mode: backend command line the runner starts inside its sandbox' }),
  NODE_RUNNER_API_KEY: v({ kind: 'string', secret: true, group: 'runner', doc: 'backend API key, given to the runner only' }),
  NODE_LLAMA_CPP_API_KEY: v({ kind: 'string', secret: true, group: 'runner', doc: 'llama.cpp API key (overrides NODE_RUNNER_API_KEY)' }),
  NODE_VLLM_API_KEY: v({ kind: 'string', secret: true, group: 'runner', doc: 'vLLM API key (overrides NODE_RUNNER_API_KEY)' }),
  NODE_MODEL_ID: v({ kind: 'string', group: 'runner', doc: 'overrides the advertised model id' }),
  NODE_RUNNER_TIMEOUT_MS: v({ kind: 'int', default: '120000', min: 100, group: 'runner', doc: 'per-request deadline; then cancel, then kill after NODE_RUNNER_KILL_GRACE_MS' }),
  NODE_RUNNER_KILL_GRACE_MS: v({ kind: 'int', default: '2000', min: 0, group: 'runner', doc: 'grace between cancel/SIGTERM and SIGKILL' }),
  NODE_RUNNER_START_TIMEOUT_MS: v({ kind: 'int', default: '60000', min: 100, group: 'runner', doc: 'spawn-to-initialize deadline' }),
  NODE_RUNNER_HEALTH_INTERVAL_MS: v({ kind: 'int', default: '10000', min: 50, group: 'runner', doc: 'deep health probe period' }),
  NODE_RUNNER_HEALTH_TIMEOUT_MS: v({ kind: 'int', default: '5000', min: 10, group: 'runner', doc: 'health probe deadline' }),
  NODE_RUNNER_HEALTH_MISSES: v({ kind: 'int', default: '3', min: 1, group: 'runner', doc: 'consecutive probe misses before a restart' }),
  NODE_RUNNER_RESTART_BASE_MS: v({ kind: 'int', default: '500', min: 0, group: 'runner', doc: 'first restart delay (doubles, with jitter)' }),
  NODE_RUNNER_RESTART_MAX_MS: v({ kind: 'int', default: '15000', min: 0, group: 'runner', doc: 'restart delay cap' }),
  NODE_RUNNER_STABLE_MS: v({ kind: 'int', default: '30000', min: 0, group: 'runner', doc: 'uptime after which the backoff resets' }),
  NODE_RUNNER_MAX_CRASHES: v({ kind: 'int', default: '5', min: 1, group: 'runner', doc: 'crashes within NODE_RUNNER_CRASH_WINDOW_MS before giving up' }),
  NODE_RUNNER_CRASH_WINDOW_MS: v({ kind: 'int', default: '180000', min: 1000, group: 'runner', doc: 'crash-counting window' }),
  NODE_RUNNER_GIVE_UP_MS: v({ kind: 'int', default: '300000', min: 1000, group: 'runner', doc: 'after giving up, wait this long before one more try (Retry-After)' }),
  NODE_RUNNER_MAX_FRAME_BYTES: v({ kind: 'int', default: '8388608', min: 1024, group: 'runner', doc: 'largest JSON-RPC frame a runner may send' }),
  NODE_DRAIN_TIMEOUT_MS: v({ kind: 'int', default: '30000', min: 0, group: 'runner', doc: 'graceful stop: time to drain in-flight requests' }),
  // sandbox
  NODE_SANDBOX_MODE: v({ kind: 'string', group: 'sandbox', doc: 'profile name from sandbox-profiles/ (`dev` by default, `strict` in production) or `disabled` (logged loudly)' }),
  NODE_SANDBOX_PROFILE_DIR: v({ kind: 'path', group: 'sandbox', doc: 'extra directory searched for profiles before the shipped sandbox-profiles/' }),
  NODE_SANDBOX_ALLOWED_RUNNERS: v({ kind: 'csv', group: 'sandbox', doc: 'runner names allowed to start (empty = all)' }),
  NODE_SANDBOX_ALLOWED_ENDPOINTS: v({ kind: 'csv', group: 'sandbox', doc: 'URL prefixes runners may reach through the egress proxy (compared as parsed URLs)' }),
  // payments
  NODE_REQUIRE_PAYMENT: v({ kind: 'bool', default: 'false', group: 'payments', doc: 'require a receipt for this node on /infer' }),
  NODE_PRICE_INPUT_SATS: v({ kind: 'number', default: '0', min: 0, group: 'payments', doc: 'price per input unit' }),
  NODE_PRICE_OUTPUT_SATS: v({ kind: 'number', default: '0', min: 0, group: 'payments', doc: 'price per output unit' }),
  NODE_PRICE_UNIT: v({ kind: 'enum', values: ['token', 'second'], default: 'token', group: 'payments', doc: 'pricing unit' }),
  NODE_ROUTER_FEE_MAX_BPS: v({ kind: 'int', default: '1000', min: 0, max: 10000, group: 'payments', doc: 'router fee cap in basis points of the node amount' }),
  NODE_ROUTER_FEE_MAX_SATS: v({ kind: 'int', default: '1000', min: 0, group: 'payments', doc: 'router fee cap in sats' }),
  NODE_RECEIPT_MAX_AGE_MS: v({ kind: 'int', default: '600000', min: 1000, group: 'payments', doc: 'oldest paidAtMs accepted' }),
  NODE_RECEIPT_MAX_SKEW_MS: v({ kind: 'int', default: '30000', min: 0, group: 'payments', doc: 'how far in the future paidAtMs may be' }),
  NODE_PAYMENT_REQUEST_TTL_MS: v({ kind: 'int', default: '600000', min: 1000, group: 'payments', doc: 'expiry of the PaymentRequest in a 402' }),
  NODE_LN_BACKEND: v({ kind: 'enum', values: ['none', 'lnd', 'cln'], default: 'none', group: 'payments', doc: 'Lightning backend that issues invoices and checks settlement' }),
  NODE_LND_REST_URL: v({ kind: 'url', group: 'payments', doc: 'LND REST base URL' }),
  NODE_LND_MACAROON_HEX: v({ kind: 'string', secret: true, group: 'payments', doc: 'LND invoice macaroon (hex)' }),
  NODE_CLN_REST_URL: v({ kind: 'url', group: 'payments', doc: 'Core Lightning clnrest base URL' }),
  NODE_CLN_RUNE: v({ kind: 'string', secret: true, group: 'payments', doc: 'Core Lightning rune' }),
  NODE_LN_TLS_CA_PATH: v({ kind: 'path', group: 'payments', doc: 'CA/cert file for a self-signed LND/CLN REST endpoint' }),
  NODE_LN_VERIFY_URL: v({ kind: 'url', group: 'payments', doc: 'external settlement verifier (fed_AI ln-adapter /verify)' }),
  NODE_LN_VERIFY_TIMEOUT_MS: v({ kind: 'int', default: '5000', min: 10, group: 'payments', doc: 'settlement check timeout' }),
  NODE_LN_VERIFY_RETRY_MAX_ATTEMPTS: v({ kind: 'int', default: '2', min: 1, max: 10, group: 'payments', doc: 'settlement check attempts' }),
  NODE_LN_VERIFY_RETRY_MIN_DELAY_MS: v({ kind: 'int', default: '100', min: 0, group: 'payments', doc: 'first retry delay' }),
  NODE_LN_VERIFY_RETRY_MAX_DELAY_MS: v({ kind: 'int', default: '1000', min: 0, group: 'payments', doc: 'retry delay cap' }),
  NODE_LN_REQUIRE_PREIMAGE: v({ kind: 'bool', default: 'false', group: 'payments', doc: 'receipts must carry a preimage' }),
  // heartbeat
  NODE_HEARTBEAT_MS: v({ kind: 'int', default: '10000', min: 100, max: 29000, group: 'heartbeat', doc: 'heartbeat period (routers drop nodes silent for 30 s)' }),
  NODE_REGION: v({ kind: 'string', group: 'heartbeat', doc: 'region advertised in the NodeDescriptor' }),
  // relay discovery
  NODE_RELAY_BOOTSTRAP: v({ kind: 'csv', group: 'relays', doc: 'bootstrap relay URLs (default: the fed_AI list)' }),
  NODE_RELAY_AGGREGATORS: v({ kind: 'csv', group: 'relays', doc: 'relay directory URLs (default none: no fetch unless configured)' }),
  NODE_RELAY_TRUST: v({ kind: 'csv', group: 'relays', doc: '`url=score` trust bonuses' }),
  NODE_RELAY_MIN_SCORE: v({ kind: 'number', default: '1', group: 'relays', doc: 'minimum relay score kept' }),
  NODE_RELAY_MAX_RESULTS: v({ kind: 'int', default: '25', min: 1, group: 'relays', doc: 'relays kept' }),
  // metering and observability
  NODE_METERING_ROTATE_BYTES: v({ kind: 'int', default: '67108864', min: 4096, group: 'metering', doc: 'metering spool file size before rotation' }),
  LOG_LEVEL: v({ kind: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', group: 'observability', doc: 'pino log level' }),
  OTEL_EXPORTER_OTLP_ENDPOINT: v({ kind: 'url', group: 'observability', doc: 'OTLP/HTTP endpoint; unset = tracing off' }),
  OTEL_SERVICE_NAME: v({ kind: 'string', default: 'fedai-node', group: 'observability', doc: 'service.name of exported spans' }),
} as const satisfies Record<string, VarSpec>;

export type EnvName = keyof typeof ENV_SPEC;
