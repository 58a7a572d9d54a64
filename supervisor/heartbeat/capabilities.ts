/**
 * What the node advertises to routers (../shared/spec/fedai-wire.md §4, §6): Capability[] and the
 * NodeDescriptor sent in every heartbeat. Rebuilt on every beat from the runner's current model list.
 *
 * - One capability per model; maxTokens = min(model.maxTokens, NODE_MAX_TOKENS); currency 'SAT';
 *   rates and unit from NODE_PRICE_*.
 * - NODE_MODEL_ID replaces the model id when the runner serves exactly one model. With several models
 *   the ids are kept: rewriting every id to one value (upstream's admin defaultModelId) would advertise
 *   duplicates (upstream defect 15.22).
 * - No model known (runner still starting, listing failed): one capability NODE_MODEL_ID ??
 *   'default-model' with contextWindow = maxTokens = NODE_MAX_TOKENS, so the node heartbeats regardless
 *   (upstream defect 15.21).
 */
import type { Config } from '../config/load-config.js';
import type { Identity } from '../crypto/keys.js';
import type { ModelInfo } from '../protocol/runner-protocol.js';
import type { Capability, NodeDescriptor, Pricing } from '../protocol/wire-types.js';

export const DEFAULT_MODEL_ID = 'default-model';

type CapabilityConfig = Pick<Config, 'NODE_MODEL_ID' | 'NODE_MAX_TOKENS' | 'NODE_PRICE_UNIT' | 'NODE_PRICE_INPUT_SATS' | 'NODE_PRICE_OUTPUT_SATS'>;

export function pricingFromConfig(config: CapabilityConfig): Pricing {
  return { unit: config.NODE_PRICE_UNIT as Pricing['unit'], inputRate: config.NODE_PRICE_INPUT_SATS, outputRate: config.NODE_PRICE_OUTPUT_SATS, currency: 'SAT' };
}

export function buildCapabilities(models: ModelInfo[], config: CapabilityConfig): Capability[] {
  const pricing = pricingFromConfig(config);
  const limit = config.NODE_MAX_TOKENS;
  if (models.length === 0) {
    return [{ modelId: config.NODE_MODEL_ID ?? DEFAULT_MODEL_ID, contextWindow: limit, maxTokens: limit, pricing: { ...pricing } }];
  }
  const override = models.length === 1 ? config.NODE_MODEL_ID : undefined;
  const out: Capability[] = [];
  const seen = new Set<string>();
  for (const m of models) {
    const modelId = override ?? m.id;
    if (seen.has(modelId)) continue;
    seen.add(modelId);
    const modelMax = Number.isFinite(m.maxTokens) && m.maxTokens > 0 ? m.maxTokens : limit;
    out.push({ modelId, contextWindow: m.contextWindow, maxTokens: Math.min(modelMax, limit), pricing: { ...pricing } });
  }
  return out;
}

export interface NodeDescriptorInput {
  config: Config;
  identity: Identity;
  models: ModelInfo[];
  inFlight: number;
  /** The port the HTTP server actually bound (matters with NODE_PORT=0); default NODE_PORT. */
  listenPort?: number;
}

/** NODE_ENDPOINT exactly as configured, else http://localhost:<port>. */
export function advertisedEndpoint(config: Config, listenPort?: number): string {
  return config.NODE_ENDPOINT ?? `http://localhost:${listenPort ?? config.NODE_PORT}`;
}

export function buildNodeDescriptor(input: NodeDescriptorInput): NodeDescriptor {
  const { config } = input;
  const d: NodeDescriptor = {
    nodeId: config.NODE_ID,
    keyId: input.identity.npub,
    endpoint: advertisedEndpoint(config, input.listenPort),
    capacity: { maxConcurrent: config.NODE_CAPACITY_MAX, currentLoad: config.NODE_CAPACITY_LOAD + Math.max(0, input.inFlight) },
    capabilities: buildCapabilities(input.models, config),
  };
  if (config.NODE_REGION !== undefined) d.region = config.NODE_REGION;
  return d;
}

/** True for endpoints a router refuses by default (400 private-ip-blocked): localhost, RFC 1918, link-local, ULA. */
export function isPrivateEndpoint(endpoint: string): boolean {
  let host: string;
  try {
    host = new URL(endpoint).hostname.toLowerCase();
  } catch {
    return true;
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === 'localhost' || host.endsWith('.localhost') || host === '::1' || host === '0.0.0.0' || host === '::') return true;
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(host);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254) || a === 0;
  }
  return /^(fc|fd)[0-9a-f]{0,2}:/.test(host) || /^fe[89ab][0-9a-f]:/.test(host);
}
