/**
 * Builds the Lightning pieces the configuration asks for: the invoice backend (NODE_LN_BACKEND=lnd|cln)
 * and the external verifier (NODE_LN_VERIFY_URL). All share NODE_LN_VERIFY_TIMEOUT_MS, the
 * NODE_LN_VERIFY_RETRY_* policy and the NODE_LN_TLS_CA_PATH trust anchor.
 */
import { readFileSync } from 'node:fs';
import type { Config } from '../../config/load-config.js';
import type { Logger } from '../../observability/logger.js';
import type { LightningBackend, SettlementVerifier } from './backend.js';
import { ClnBackend } from './cln.js';
import { LndBackend } from './lnd.js';
import { VerifyUrlClient } from './verify-url.js';

export * from './backend.js';
export { LndBackend } from './lnd.js';
export { ClnBackend } from './cln.js';
export { VerifyUrlClient } from './verify-url.js';
export { LnHttpClient, backoffDelayMs, type RetryPolicy } from './http-client.js';

type LnConfig = Pick<
  Config,
  | 'NODE_LN_BACKEND'
  | 'NODE_LND_REST_URL'
  | 'NODE_LND_MACAROON_HEX'
  | 'NODE_CLN_REST_URL'
  | 'NODE_CLN_RUNE'
  | 'NODE_LN_TLS_CA_PATH'
  | 'NODE_LN_VERIFY_URL'
  | 'NODE_LN_VERIFY_TIMEOUT_MS'
  | 'NODE_LN_VERIFY_RETRY_MAX_ATTEMPTS'
  | 'NODE_LN_VERIFY_RETRY_MIN_DELAY_MS'
  | 'NODE_LN_VERIFY_RETRY_MAX_DELAY_MS'
>;

function common(config: LnConfig, logger?: Logger) {
  return {
    timeoutMs: config.NODE_LN_VERIFY_TIMEOUT_MS,
    retry: {
      maxAttempts: config.NODE_LN_VERIFY_RETRY_MAX_ATTEMPTS,
      minDelayMs: config.NODE_LN_VERIFY_RETRY_MIN_DELAY_MS,
      maxDelayMs: config.NODE_LN_VERIFY_RETRY_MAX_DELAY_MS,
    },
    ...(config.NODE_LN_TLS_CA_PATH ? { ca: readFileSync(config.NODE_LN_TLS_CA_PATH) } : {}),
    ...(logger ? { logger } : {}),
  };
}

/** The invoice backend named by NODE_LN_BACKEND, or undefined for 'none'. */
export function lightningBackendFromConfig(config: LnConfig, logger?: Logger): LightningBackend | undefined {
  if (config.NODE_LN_BACKEND === 'lnd') {
    if (!config.NODE_LND_REST_URL || !config.NODE_LND_MACAROON_HEX) throw new Error('NODE_LN_BACKEND=lnd needs NODE_LND_REST_URL and NODE_LND_MACAROON_HEX');
    return new LndBackend({ ...common(config, logger), restUrl: config.NODE_LND_REST_URL, macaroonHex: config.NODE_LND_MACAROON_HEX });
  }
  if (config.NODE_LN_BACKEND === 'cln') {
    if (!config.NODE_CLN_REST_URL || !config.NODE_CLN_RUNE) throw new Error('NODE_LN_BACKEND=cln needs NODE_CLN_REST_URL and NODE_CLN_RUNE');
    return new ClnBackend({ ...common(config, logger), restUrl: config.NODE_CLN_REST_URL, rune: config.NODE_CLN_RUNE });
  }
  return undefined;
}

/** The NODE_LN_VERIFY_URL client, or undefined when unset. */
export function settlementVerifierFromConfig(config: LnConfig, logger?: Logger): SettlementVerifier | undefined {
  if (!config.NODE_LN_VERIFY_URL) return undefined;
  return new VerifyUrlClient({ ...common(config, logger), url: config.NODE_LN_VERIFY_URL });
}
