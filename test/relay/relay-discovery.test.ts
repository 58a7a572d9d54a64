import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { configFrom } from '../../supervisor/config/load-config.js';
import {
  DEFAULT_BOOTSTRAP_RELAYS,
  discoverRelays,
  normalizeRelayUrl,
  parseDirectoryPayload,
  relayOptionsFromConfig,
  relayPriority,
} from '../../supervisor/relay/relay-discovery.js';

const vectors = JSON.parse(readFileSync(fileURLToPath(new URL('../../../shared/spec/vectors.json', import.meta.url)), 'utf8'));
const v7 = vectors.v7_relay_discovery;

let server: Server;
let base = '';
const hits: string[] = [];
const extra: Record<string, unknown> = {};

beforeAll(async () => {
  server = createServer((req, res) => {
    const name = (req.url ?? '/').slice(1);
    hits.push(name);
    const body = v7.input.aggregators[name] ?? extra[name];
    if (name === 'slow') return; // never answers: the timeout must cut it
    if (body === undefined || body === 'fetch fails') {
      res.writeHead(500, { 'content-type': 'application/json' });
      return res.end('{"error":"boom"}');
    }
    const send = () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    if (name === 'late') setTimeout(send, 150); // answers after 'early'
    else send();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('discoverRelays', () => {
  test('vector v7 reproduces, with directories served over real HTTP and a failing one skipped', async () => {
    const errors: string[] = [];
    const now = 1_700_000_000_000;
    const out = await discoverRelays({
      bootstrapRelays: v7.input.bootstrapRelays,
      trustScores: v7.input.trustScores,
      minScore: v7.input.minScore,
      maxResults: v7.input.maxResults,
      aggregatorUrls: ['dir1', 'dir2', 'dir3'].map((d) => `${base}/${d}`),
      now: () => now,
      onDirectoryError: (url) => errors.push(url),
    });
    expect(out.map(({ lastSeenMs, ...rest }) => rest)).toEqual(v7.output);
    expect(out.every((d) => d.lastSeenMs === now)).toBe(true);
    expect(errors).toEqual([`${base}/dir3`]);
    // relay.c (2) and relay.e (1) only drop because of maxResults:
    const all = await discoverRelays({ ...v7.input, aggregatorUrls: ['dir1', 'dir2'].map((d) => `${base}/${d}`), maxResults: 10 });
    expect(all.map((d) => [d.url, d.score])).toEqual([
      ['wss://relay.b.example/', 8],
      ['wss://relay.a.example/', 6.5],
      ['wss://relay.d.example/', 5],
      ['wss://relay.f.example/', 5],
      ['wss://relay.c.example/', 2],
      ['wss://relay.e.example/', 1],
    ]);
  });

  test('merge order is the listed order even when directories answer in another order', async () => {
    extra.late = { 'wss://relay.x.example': { score: 6, latencyMs: 10 } };
    extra.early = { 'wss://relay.x.example': { score: 6, latencyMs: 20 } };
    const out = await discoverRelays({ bootstrapRelays: [], aggregatorUrls: [`${base}/early`, `${base}/late`] });
    expect(out[0]).toMatchObject({ url: 'wss://relay.x.example/', latencyMs: 10, score: 5.95 });
    const rev = await discoverRelays({ bootstrapRelays: [], aggregatorUrls: [`${base}/late`, `${base}/early`] });
    expect(rev[0]).toMatchObject({ latencyMs: 20, score: 5.95 });
  });

  test('a directory that never answers is cut by timeoutMs; bad JSON and refused connections are skipped', async () => {
    extra.badjson = '{not json';
    const refused = createServer();
    await new Promise<void>((r) => refused.listen(0, '127.0.0.1', r));
    const deadPort = (refused.address() as AddressInfo).port;
    await new Promise<void>((r) => refused.close(() => r()));
    const errors: string[] = [];
    const out = await discoverRelays({
      bootstrapRelays: ['wss://only.example'],
      aggregatorUrls: [`${base}/slow`, `${base}/badjson`, `http://127.0.0.1:${deadPort}/x`],
      timeoutMs: 300,
      onDirectoryError: (u) => errors.push(u),
    });
    expect(out.map((d) => d.url)).toEqual(['wss://only.example/']);
    expect(errors.sort()).toEqual([`${base}/slow`, `${base}/badjson`, `http://127.0.0.1:${deadPort}/x`].sort());
  });

  test('minScore filters; default bootstrap list when none given; no directory is fetched by default', async () => {
    const before = hits.length;
    const out = await discoverRelays({});
    expect(out.map((d) => d.url)).toEqual(DEFAULT_BOOTSTRAP_RELAYS.map((u) => u + '/'));
    expect(hits.length).toBe(before);
    expect(await discoverRelays({ bootstrapRelays: ['wss://a.example'], minScore: 5.5 })).toEqual([]);
    expect(await discoverRelays({ bootstrapRelays: ['wss://a.example'], trustScores: { 'wss://a.example/': -10 }, minScore: 0 })).toMatchObject([{ score: 0, priority: 0 }]);
  });

  test('normalisation, priority rounding and payload shapes', () => {
    expect(normalizeRelayUrl('relay.b.example')).toBe('wss://relay.b.example/');
    expect(normalizeRelayUrl('http://r.example:7000')).toBe('ws://r.example:7000/');
    expect(normalizeRelayUrl('https://r.example/path')).toBe('wss://r.example/path');
    expect(normalizeRelayUrl('ftp://r.example')).toBeNull();
    expect(normalizeRelayUrl('  ')).toBeNull();
    expect(relayPriority(6.5)).toBe(3.3);
    expect(relayPriority(25)).toBe(5);
    expect(parseDirectoryPayload({ entries: ['wss://a', { url: 'wss://b', score: 3, tags: ['x', 1] }] })).toEqual([
      { url: 'wss://a' },
      { url: 'wss://b', score: 3, tags: ['x'] },
    ]);
    expect(parseDirectoryPayload({ 'wss://c': false })).toEqual([{ url: 'wss://c', read: false, write: false }]);
    expect(parseDirectoryPayload('nope')).toEqual([]);
  });
});

describe('relayOptionsFromConfig', () => {
  test('defaults: fed_AI bootstrap list, no aggregators (no internet by default)', () => {
    const o = relayOptionsFromConfig(configFrom({}));
    expect(o.bootstrapRelays).toEqual([...DEFAULT_BOOTSTRAP_RELAYS]);
    expect(o.aggregatorUrls).toEqual([]);
    expect(o).toMatchObject({ minScore: 1, maxResults: 25, trustScores: {} });
  });

  test('NODE_RELAY_* are honoured', () => {
    const o = relayOptionsFromConfig(
      configFrom({
        NODE_RELAY_BOOTSTRAP: 'wss://a.example, b.example',
        NODE_RELAY_AGGREGATORS: 'https://dir.example/relays.json',
        NODE_RELAY_TRUST: 'wss://a.example=2.5,b.example=-1',
        NODE_RELAY_MIN_SCORE: '0.5',
        NODE_RELAY_MAX_RESULTS: '3',
      }),
    );
    expect(o).toEqual({
      bootstrapRelays: ['wss://a.example', 'b.example'],
      aggregatorUrls: ['https://dir.example/relays.json'],
      trustScores: { 'wss://a.example': 2.5, 'b.example': -1 },
      minScore: 0.5,
      maxResults: 3,
    });
  });
});
