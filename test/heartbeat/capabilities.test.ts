import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configFrom } from '../../supervisor/config/load-config.js';
import { canonicalize } from '../../supervisor/protocol/canonical-json.js';
import { parseIdentity } from '../../supervisor/crypto/keys.js';
import { envelopeDigest, signEnvelope, verifyEnvelope } from '../../supervisor/crypto/envelope.js';
import { buildCapabilities, buildNodeDescriptor, isPrivateEndpoint } from '../../supervisor/heartbeat/capabilities.js';

const vectors = JSON.parse(readFileSync(fileURLToPath(new URL('../../../shared/spec/vectors.json', import.meta.url)), 'utf8'));
const node = parseIdentity('11'.repeat(32));

describe('buildCapabilities', () => {
  test('one per model, SAT pricing from NODE_PRICE_*, maxTokens capped by NODE_MAX_TOKENS', () => {
    const config = configFrom({ NODE_MAX_TOKENS: '2048', NODE_PRICE_INPUT_SATS: '0.5', NODE_PRICE_OUTPUT_SATS: '2', NODE_PRICE_UNIT: 'second' });
    const caps = buildCapabilities(
      [
        { id: 'a', contextWindow: 8192, maxTokens: 8192 },
        { id: 'b', contextWindow: 1024, maxTokens: 512 },
      ],
      config,
    );
    expect(caps).toEqual([
      { modelId: 'a', contextWindow: 8192, maxTokens: 2048, pricing: { unit: 'second', inputRate: 0.5, outputRate: 2, currency: 'SAT' } },
      { modelId: 'b', contextWindow: 1024, maxTokens: 512, pricing: { unit: 'second', inputRate: 0.5, outputRate: 2, currency: 'SAT' } },
    ]);
  });

  test('NODE_MODEL_ID renames a single model; with several models ids are kept (no duplicates)', () => {
    const config = configFrom({ NODE_MODEL_ID: 'public-name' });
    expect(buildCapabilities([{ id: 'local.gguf', contextWindow: 4096, maxTokens: 4096 }], config).map((c) => c.modelId)).toEqual(['public-name']);
    expect(
      buildCapabilities(
        [
          { id: 'x', contextWindow: 1, maxTokens: 1 },
          { id: 'y', contextWindow: 1, maxTokens: 1 },
          { id: 'x', contextWindow: 1, maxTokens: 1 },
        ],
        config,
      ).map((c) => c.modelId),
    ).toEqual(['x', 'y']);
  });

  test('no model known: one default capability (heartbeat regardless, defect 21)', () => {
    expect(buildCapabilities([], configFrom({}))).toEqual([
      { modelId: 'default-model', contextWindow: 4096, maxTokens: 4096, pricing: { unit: 'token', inputRate: 0, outputRate: 0, currency: 'SAT' } },
    ]);
    expect(buildCapabilities([], configFrom({ NODE_MODEL_ID: 'm', NODE_MAX_TOKENS: '100' }))[0]).toMatchObject({ modelId: 'm', contextWindow: 100, maxTokens: 100 });
  });
});

describe('buildNodeDescriptor', () => {
  test('reproduces vector v4 byte for byte (canonical bytes, sha256 and zero-aux signature)', () => {
    const v4 = vectors.v4_heartbeat_register_node;
    const config = configFrom({ NODE_ID: 'node-1', NODE_ENDPOINT: 'https://node1.example.com', NODE_CAPACITY_MAX: '4' });
    const d = buildNodeDescriptor({ config, identity: node, models: [{ id: 'mock-model', contextWindow: 4096, maxTokens: 4096 }], inFlight: 0 });
    expect(d).toEqual(v4.envelope.payload);
    const env = signEnvelope(d, node, { nonce: 'hb-nonce-1', ts: 1700000000000, auxRand: new Uint8Array(32) });
    expect(Buffer.from(envelopeDigest(env)).toString('hex')).toBe(v4.sha256);
    expect(env.sig).toBe(v4.envelope.sig);
    expect(verifyEnvelope(v4.envelope)).toBe(true);
    expect(canonicalize(env)).toBe(canonicalize(v4.envelope));
  });

  test('keyId is the node npub; load = NODE_CAPACITY_LOAD + inFlight; region; default endpoint uses the bound port', () => {
    const config = configFrom({ NODE_CAPACITY_LOAD: '2', NODE_REGION: 'eu-west', NODE_PORT: '0' });
    const d = buildNodeDescriptor({ config, identity: node, models: [], inFlight: 3, listenPort: 43210 });
    expect(d.keyId).toBe(node.npub);
    expect(d.capacity).toEqual({ maxConcurrent: 4, currentLoad: 5 });
    expect(d.region).toBe('eu-west');
    expect(d.endpoint).toBe('http://localhost:43210');
    expect(buildNodeDescriptor({ config: configFrom({}), identity: node, models: [], inFlight: 0 }).endpoint).toBe('http://localhost:8081');
    expect('region' in buildNodeDescriptor({ config: configFrom({}), identity: node, models: [], inFlight: 0 })).toBe(false);
  });

  test('isPrivateEndpoint flags what routers refuse by default', () => {
    for (const u of ['http://localhost:8081', 'http://127.0.0.1', 'http://10.1.2.3', 'http://172.20.0.1', 'http://192.168.1.1', 'http://169.254.1.1', 'http://[::1]:80', 'http://[fd00::1]', 'http://[fe80::1]']) {
      expect([u, isPrivateEndpoint(u)]).toEqual([u, true]);
    }
    for (const u of ['https://node1.example.com', 'http://8.8.8.8', 'http://172.32.0.1', 'http://[2001:db8::1]']) {
      expect([u, isPrivateEndpoint(u)]).toEqual([u, false]);
    }
  });
});
