import { describe, expect, it } from '@jest/globals';
import { quoteSats, ratesFromConfig, routerMinimumSats, type Rates } from '../../supervisor/payments/pricing.js';
import { configFrom } from '../../supervisor/config/load-config.js';

const tok = (inputRate: number, outputRate: number): Rates => ({ unit: 'token', inputRate, outputRate });

describe('routerMinimumSats (fed_AI router formula)', () => {
  it('is max(1, round(inputRate·ceil(chars/4) + outputRate·maxTokens))', () => {
    // 10 chars → 3 tokens; 0.5·3 + 0.25·10 = 4
    expect(routerMinimumSats({ prompt: 'abcdefghij', maxTokens: 10 }, tok(0.5, 0.25))).toBe(4);
    // 0.3·3 + 0.3·1 = 1.2 → round → 1
    expect(routerMinimumSats({ prompt: 'abcdefghij', maxTokens: 1 }, tok(0.3, 0.3))).toBe(1);
    // rounding half up: 0.5·1 + 1·2 = 2.5 → 3
    expect(routerMinimumSats({ prompt: 'abc', maxTokens: 2 }, tok(0.5, 1))).toBe(3);
    // zero rates and an empty prompt still cost 1
    expect(routerMinimumSats({ prompt: '', maxTokens: 5 }, tok(0, 0))).toBe(1);
    // counts UTF-16 code units, as JavaScript routers do: '😀' is 2 units → 1 token
    expect(routerMinimumSats({ prompt: '😀'.repeat(4), maxTokens: 0 }, tok(10, 0))).toBe(20);
  });

  it('ignores the unit: routers apply the token formula regardless', () => {
    expect(routerMinimumSats({ prompt: 'x'.repeat(40), maxTokens: 100 }, { unit: 'second', inputRate: 1, outputRate: 2 })).toBe(210);
  });
});

describe('quoteSats (the node 402 price)', () => {
  it('uses exact token counts but never goes below the router minimum', () => {
    const req = { prompt: 'x'.repeat(400), maxTokens: 100 }; // estIn = 100
    const rates = tok(1, 2);
    expect(routerMinimumSats(req, rates)).toBe(300);
    expect(quoteSats(req, { inputTokens: 150, exact: true }, rates)).toBe(350);
    expect(quoteSats(req, { inputTokens: 20, exact: true }, rates)).toBe(300);
    expect(quoteSats(req, undefined, rates)).toBe(300);
    // fractional prices round up in the quote
    expect(quoteSats({ prompt: 'abcd', maxTokens: 1 }, { inputTokens: 3 }, tok(0.5, 0.1))).toBe(2);
  });

  it('unit second bills whole seconds of estimated latency at inputRate+outputRate', () => {
    const rates: Rates = { unit: 'second', inputRate: 1, outputRate: 9 };
    const req = { prompt: '', maxTokens: 1 }; // router minimum: round(9) = 9
    expect(quoteSats(req, { latencyEstimateMs: 2500 }, rates)).toBe(30);
    expect(quoteSats(req, { latencyEstimateMs: 10 }, rates)).toBe(10);
    // without an estimate: 50 ms per output token → 400 tokens = 20 s
    expect(quoteSats({ prompt: '', maxTokens: 400 }, undefined, { unit: 'second', inputRate: 1, outputRate: 0 })).toBe(20);
  });

  it('reads rates from config', () => {
    expect(ratesFromConfig(configFrom({ NODE_PRICE_INPUT_SATS: '0.5', NODE_PRICE_OUTPUT_SATS: '2', NODE_PRICE_UNIT: 'second' }))).toEqual({ unit: 'second', inputRate: 0.5, outputRate: 2 });
  });
});
