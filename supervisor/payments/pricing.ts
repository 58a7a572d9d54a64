/**
 * Prices in sats (docs/payments.md, "Pricing").
 *
 * Two numbers, on purpose:
 * - `routerMinimumSats` is fed_AI's router formula (../shared/spec/fedai-wire.md §8):
 *   max(1, round(inputRate·estIn + outputRate·maxTokens)) with estIn = the chars/4 estimate. It is the
 *   LOWEST amount the gate accepts for a request. It never uses exact token counts, so a receipt a fed_AI
 *   router priced correctly for this node's advertised rates is never refused as insufficient.
 * - `quoteSats` is what the node asks for in its own 402. It may use the runner's exact token count
 *   (unit 'token') or its latency estimate (unit 'second'), and it is never below the router minimum,
 *   so paying the quote always satisfies the gate.
 *
 * Unit 'second': the node bills whole seconds of estimated latency, billedSeconds =
 * max(1, ceil(latencyEstimateMs / 1000)), at (inputRate + outputRate) sats per second. Without a runner
 * latency estimate it assumes DEFAULT_MS_PER_OUTPUT_TOKEN per output token. Routers do not know units and
 * still apply their token formula, which stays the accepted minimum.
 */
import { estimateTokens } from '../../runner-host/adapter.js';
import type { Config } from '../config/load-config.js';
import type { InferenceRequest } from '../protocol/wire-types.js';

export interface Rates {
  readonly unit: 'token' | 'second';
  readonly inputRate: number;
  readonly outputRate: number;
}

export interface QuoteEstimate {
  /** Prompt tokens from the runner (exact: from the model's tokenizer). */
  readonly inputTokens?: number;
  readonly exact?: boolean;
  /** Runner's latency estimate, used with unit 'second'. */
  readonly latencyEstimateMs?: number;
}

export const DEFAULT_MS_PER_OUTPUT_TOKEN = 50;

type PricedRequest = Pick<InferenceRequest, 'prompt' | 'maxTokens'>;

export function ratesFromConfig(config: Pick<Config, 'NODE_PRICE_UNIT' | 'NODE_PRICE_INPUT_SATS' | 'NODE_PRICE_OUTPUT_SATS'>): Rates {
  return { unit: config.NODE_PRICE_UNIT === 'second' ? 'second' : 'token', inputRate: config.NODE_PRICE_INPUT_SATS, outputRate: config.NODE_PRICE_OUTPUT_SATS };
}

function safeMaxTokens(n: unknown): number {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0;
}

/** fed_AI's router price: max(1, round(inputRate·estIn + outputRate·maxTokens)), estIn = chars/4. */
export function routerMinimumSats(request: PricedRequest, rates: Rates): number {
  const estIn = estimateTokens(typeof request.prompt === 'string' ? request.prompt : '');
  const raw = rates.inputRate * estIn + rates.outputRate * safeMaxTokens(request.maxTokens);
  return Math.max(1, Math.round(raw));
}

/** The node's own 402 price; never below routerMinimumSats for the same request and rates. */
export function quoteSats(request: PricedRequest, estimate: QuoteEstimate | undefined, rates: Rates): number {
  const floor = routerMinimumSats(request, rates);
  const maxTokens = safeMaxTokens(request.maxTokens);
  let own: number;
  if (rates.unit === 'second') {
    const latencyMs =
      estimate?.latencyEstimateMs !== undefined && Number.isFinite(estimate.latencyEstimateMs) && estimate.latencyEstimateMs >= 0
        ? estimate.latencyEstimateMs
        : maxTokens * DEFAULT_MS_PER_OUTPUT_TOKEN;
    const billedSeconds = Math.max(1, Math.ceil(latencyMs / 1000));
    own = Math.ceil((rates.inputRate + rates.outputRate) * billedSeconds);
  } else {
    const inputTokens =
      estimate?.inputTokens !== undefined && Number.isFinite(estimate.inputTokens) && estimate.inputTokens >= 0
        ? estimate.inputTokens
        : estimateTokens(typeof request.prompt === 'string' ? request.prompt : '');
    own = Math.ceil(rates.inputRate * inputTokens + rates.outputRate * maxTokens);
  }
  return Math.max(1, floor, own);
}
