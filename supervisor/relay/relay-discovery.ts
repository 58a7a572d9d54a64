/**
 * Nostr relay discovery, as fed_AI specifies it (../shared/spec/fedai-wire.md §10; vector v7).
 *
 * 1. URLs are normalised with WHATWG URL: http→ws, https→wss, a bare host gets `wss://`; the output
 *    keeps URL's serialisation (a bare origin gets a trailing slash). Trust keys are normalised the
 *    same way, so `wss://relay.b.example` matches `wss://relay.b.example/`.
 * 2. score = max(0, max(1, entry.score ?? 5) + trust − latencyMs/200);
 *    priority = round1(clamp(score, 0, 10) / 2).
 * 3. Bootstrap relays first, then the directories, fetched in parallel; a failing directory is
 *    skipped. Results are merged in the order the directories are LISTED (upstream merged in completion
 *    order, which made "whichever merged last" racy; list order makes it deterministic).
 * 4. Directory payloads: {relays}, {entries} or the raw value: an array of strings / {url} objects, or a
 *    map url → object | boolean (a boolean sets read and write).
 * 5. Duplicates merge: max score, max priority, union of tags, max lastSeenMs; other fields from the
 *    entry merged last. lastSeenMs = now.
 * 6. Keep score ≥ minScore; sort by score then priority, descending, stable; cut to maxResults.
 *
 * fedai-node differences (safety, not format): only ws:/wss: relays are kept (upstream kept any scheme);
 * each directory fetch has a timeout and a body-size cap; non-finite numbers are ignored.
 *
 * The node does not reach the internet by default: relayOptionsFromConfig() uses NO directory unless
 * NODE_RELAY_AGGREGATORS is set (upstream defaulted to two public directories). Bootstrap relays are
 * only listed, never contacted.
 */
import type { Config } from '../config/load-config.js';

export interface RelayDescriptor {
  url: string;
  read: boolean;
  write: boolean;
  priority: number;
  score: number;
  tags: string[];
  lastSeenMs: number;
  latencyMs?: number;
}

export interface DiscoverRelaysOptions {
  bootstrapRelays?: string[];
  aggregatorUrls?: string[];
  trustScores?: Record<string, number>;
  minScore?: number;
  maxResults?: number;
  fetchImpl?: typeof fetch;
  now?: () => number;
  signal?: AbortSignal;
  /** Per-directory fetch timeout (default 5000 ms). */
  timeoutMs?: number;
  /** Called once per failing directory (no secrets in it: URL and a short reason). */
  onDirectoryError?: (url: string, reason: string) => void;
}

export const DEFAULT_BOOTSTRAP_RELAYS: readonly string[] = [
  'wss://relay.damus.io',
  'wss://relay.snort.social',
  'wss://eden.nostr.land',
  'wss://relay.nostr.info',
  'wss://rbr.bio',
];
/** Upstream's default directories. fedai-node does NOT use them unless configured. */
export const UPSTREAM_DEFAULT_AGGREGATORS: readonly string[] = ['https://rbr.bio/relays.json', 'https://relays.nostr.info/relays.json'];
export const DEFAULT_MIN_SCORE = 1;
export const DEFAULT_MAX_RESULTS = 25;
const MAX_DIRECTORY_BYTES = 4 * 1024 * 1024;

export interface RelayDirectoryEntry {
  url: string;
  read?: boolean;
  write?: boolean;
  score?: number;
  tags?: string[];
  latencyMs?: number;
}

/** Normalised relay URL, or null when it is not a ws(s) URL. */
export function normalizeRelayUrl(raw: string): string | null {
  const s = raw.trim();
  if (!s) return null;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    if (s.includes('://')) return null;
    try {
      u = new URL(`wss://${s}`);
    } catch {
      return null;
    }
  }
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') return null;
  if (!u.hostname) return null;
  return u.toString();
}

export function relayPriority(score: number): number {
  const clamped = Math.max(0, Math.min(10, score));
  return parseFloat((clamped / 2).toFixed(1));
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function castEntry(o: Record<string, unknown>, url: string): RelayDirectoryEntry {
  const e: RelayDirectoryEntry = { url };
  if (typeof o.read === 'boolean') e.read = o.read;
  if (typeof o.write === 'boolean') e.write = o.write;
  if (finite(o.score)) e.score = o.score;
  if (Array.isArray(o.tags)) e.tags = o.tags.filter((t): t is string => typeof t === 'string');
  if (finite(o.latencyMs)) e.latencyMs = o.latencyMs;
  return e;
}

function convert(value: unknown, keyUrl?: string): RelayDirectoryEntry[] {
  if (typeof value === 'string') return [{ url: value }];
  if (Array.isArray(value)) return value.flatMap((v) => convert(v));
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (typeof o.url === 'string') return [castEntry(o, o.url)];
    if (keyUrl !== undefined) return [castEntry(o, keyUrl)];
    return [];
  }
  if (typeof value === 'boolean' && keyUrl !== undefined) return [{ url: keyUrl, read: value, write: value }];
  return [];
}

/** Entries of one directory payload: {relays}, {entries} or the raw value (array or url → value map). */
export function parseDirectoryPayload(payload: unknown): RelayDirectoryEntry[] {
  if (payload === null || typeof payload !== 'object') return [];
  const p = payload as Record<string, unknown>;
  const v = p.relays ?? p.entries ?? payload;
  if (Array.isArray(v)) return v.flatMap((e) => convert(e));
  if (v !== null && typeof v === 'object') return Object.entries(v as Record<string, unknown>).flatMap(([k, e]) => convert(e, k));
  return [];
}

function toDescriptor(e: RelayDirectoryEntry, trust: Map<string, number>, now: number): RelayDescriptor | null {
  const url = normalizeRelayUrl(e.url);
  if (!url) return null;
  const bonus = trust.get(url) ?? 0;
  const penalty = e.latencyMs ? e.latencyMs / 200 : 0;
  const score = Math.max(0, Math.max(1, e.score ?? 5) + bonus - penalty);
  const d: RelayDescriptor = {
    url,
    read: e.read ?? true,
    write: e.write ?? true,
    score,
    priority: relayPriority(score),
    tags: e.tags ? [...e.tags] : [],
    lastSeenMs: now,
  };
  if (e.latencyMs !== undefined) d.latencyMs = e.latencyMs;
  return d;
}

function merge(map: Map<string, RelayDescriptor>, d: RelayDescriptor): void {
  const old = map.get(d.url);
  if (!old) {
    map.set(d.url, d);
    return;
  }
  map.set(d.url, {
    ...old,
    ...d,
    score: Math.max(old.score, d.score),
    priority: Math.max(old.priority, d.priority),
    tags: [...new Set([...old.tags, ...d.tags])],
    lastSeenMs: Math.max(old.lastSeenMs, d.lastSeenMs),
  });
}

async function fetchDirectory(url: string, fetchImpl: typeof fetch, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
  const signals = [AbortSignal.timeout(timeoutMs)];
  if (signal) signals.push(signal);
  const res = await fetchImpl(url, { signal: AbortSignal.any(signals), headers: { accept: 'application/json', 'user-agent': 'fedai-node' } });
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`HTTP ${res.status}`);
  }
  const len = Number(res.headers.get('content-length') ?? '0');
  if (len > MAX_DIRECTORY_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error('directory too large');
  }
  const text = await res.text();
  if (text.length > MAX_DIRECTORY_BYTES) throw new Error('directory too large');
  return JSON.parse(text) as unknown;
}

export async function discoverRelays(opts: DiscoverRelaysOptions = {}): Promise<RelayDescriptor[]> {
  const now = (opts.now ?? Date.now)();
  const trust = new Map<string, number>();
  for (const [raw, bonus] of Object.entries(opts.trustScores ?? {})) {
    const u = normalizeRelayUrl(raw);
    if (u && finite(bonus)) trust.set(u, bonus);
  }
  const minScore = opts.minScore ?? DEFAULT_MIN_SCORE;
  const maxResults = opts.maxResults ?? DEFAULT_MAX_RESULTS;
  const fetchImpl = opts.fetchImpl ?? fetch;
  const timeoutMs = opts.timeoutMs ?? 5000;
  const map = new Map<string, RelayDescriptor>();

  for (const raw of opts.bootstrapRelays ?? DEFAULT_BOOTSTRAP_RELAYS) {
    const d = toDescriptor({ url: raw }, trust, now);
    if (d) merge(map, d);
  }
  // Fetch in parallel; merge in list order.
  const payloads = await Promise.all(
    (opts.aggregatorUrls ?? []).map(async (url) => {
      try {
        return await fetchDirectory(url, fetchImpl, timeoutMs, opts.signal);
      } catch (err) {
        opts.onDirectoryError?.(url, (err as Error).message ?? String(err));
        return undefined;
      }
    }),
  );
  for (const payload of payloads) {
    if (payload === undefined) continue;
    for (const e of parseDirectoryPayload(payload)) {
      const d = toDescriptor(e, trust, now);
      if (d) merge(map, d);
    }
  }
  const kept = [...map.values()].filter((d) => d.score >= minScore);
  kept.sort((a, b) => b.score - a.score || b.priority - a.priority);
  return kept.slice(0, Math.max(0, maxResults));
}

/** Parses NODE_RELAY_TRUST entries `url=score` (split at the last '='). */
export function parseTrustScores(entries: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const entry of entries) {
    const i = entry.lastIndexOf('=');
    if (i <= 0) continue;
    const n = Number(entry.slice(i + 1).trim());
    if (Number.isFinite(n)) out[entry.slice(0, i).trim()] = n;
  }
  return out;
}

/**
 * Options from NODE_RELAY_*. Bootstrap defaults to fed_AI's list; directories default to NONE (no
 * network access unless NODE_RELAY_AGGREGATORS is configured).
 */
export function relayOptionsFromConfig(
  config: Pick<Config, 'NODE_RELAY_BOOTSTRAP' | 'NODE_RELAY_AGGREGATORS' | 'NODE_RELAY_TRUST' | 'NODE_RELAY_MIN_SCORE' | 'NODE_RELAY_MAX_RESULTS'>,
): DiscoverRelaysOptions & { bootstrapRelays: string[]; aggregatorUrls: string[] } {
  return {
    bootstrapRelays: config.NODE_RELAY_BOOTSTRAP.length > 0 ? [...config.NODE_RELAY_BOOTSTRAP] : [...DEFAULT_BOOTSTRAP_RELAYS],
    aggregatorUrls: [...config.NODE_RELAY_AGGREGATORS],
    trustScores: parseTrustScores(config.NODE_RELAY_TRUST),
    minScore: config.NODE_RELAY_MIN_SCORE,
    maxResults: config.NODE_RELAY_MAX_RESULTS,
  };
}
