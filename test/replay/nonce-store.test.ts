/**
 * NonceStore: per-key scope, window, check-without-consume, persistence across close/reopen (restart),
 * bounded size with a low-water mark, and recovery from a missing or corrupt directory.
 * Real lmdb files in a temp dir; time is an injected clock (no sleeps, no timing assertions).
 */
import { afterAll, afterEach, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Writable } from 'node:stream';
import { NonceStore } from '../../supervisor/replay/nonce-store.js';
import { createLogger } from '../../supervisor/observability/logger.js';
import { FedaiError } from '../../supervisor/errors.js';

const base = mkdtempSync(join(tmpdir(), 'fedai-nonce-'));
let n = 0;
const freshDir = () => join(base, `s${++n}`);
const open: NonceStore[] = [];
const T0 = 1_700_000_000_000;
const W = 60_000;

class Clock {
  t = T0;
  now = () => this.t;
}

function openStore(dir: string, clock: Clock, extra: Partial<Parameters<typeof NonceStore.open>[0]> = {}): NonceStore {
  const s = NonceStore.open({ dir, windowMs: W, maxEntries: 1000, now: clock.now, ...extra });
  open.push(s);
  return s;
}

async function closeStore(s: NonceStore): Promise<void> {
  await s.close();
  open.splice(open.indexOf(s), 1);
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

const A = 'npub1routeraaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const B = 'npub1routerbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';

describe('replay rules', () => {
  test('a nonce is consumed once: reuse is refused', () => {
    const s = openStore(freshDir(), new Clock());
    expect(s.commit(A, 'n1', T0)).toBeNull();
    expect(s.commit(A, 'n1', T0)).toBe('nonce-reused');
    expect(s.commit(A, 'n1', T0 + 5)).toBe('nonce-reused'); // a different ts does not make it new
    expect(s.check(A, 'n1', T0)).toBe('nonce-reused');
    expect(s.size).toBe(1);
  });

  test('nonces are scoped per signer keyId', () => {
    const s = openStore(freshDir(), new Clock());
    expect(s.commit(A, 'shared', T0)).toBeNull();
    expect(s.commit(B, 'shared', T0)).toBeNull();
    expect(s.commit(A, 'shared', T0)).toBe('nonce-reused');
    expect(s.commit(B, 'shared', T0)).toBe('nonce-reused');
    // keyId/nonce boundaries cannot be shifted to collide: ("ab","c") vs ("a","bc")
    expect(s.commit('ab', 'c', T0)).toBeNull();
    expect(s.commit('a', 'bc', T0)).toBeNull();
    expect(s.size).toBe(4);
  });

  test('ts outside the window, in both directions, is refused and not consumed', () => {
    const s = openStore(freshDir(), new Clock());
    expect(s.commit(A, 'old', T0 - W - 1)).toBe('ts-out-of-window');
    expect(s.commit(A, 'future', T0 + W + 1)).toBe('ts-out-of-window');
    expect(s.check(A, 'old', T0 - W - 1)).toBe('ts-out-of-window');
    expect(s.check(A, 'future', T0 + W + 1)).toBe('ts-out-of-window');
    expect(s.commit(A, 'edge-low', T0 - W)).toBeNull();
    expect(s.commit(A, 'edge-high', T0 + W)).toBeNull();
    expect(s.size).toBe(2);
  });

  test('non-integer, negative and non-finite ts are out of window', () => {
    const s = openStore(freshDir(), new Clock());
    for (const ts of [T0 + 0.5, -1, NaN, Infinity, '1700000000000' as unknown as number]) {
      expect(s.check(A, 'x', ts)).toBe('ts-out-of-window');
      expect(s.commit(A, 'x', ts)).toBe('ts-out-of-window');
    }
    expect(s.size).toBe(0);
  });

  test('check() does not consume: a request refused later (401/402) keeps its nonce usable', () => {
    const s = openStore(freshDir(), new Clock());
    expect(s.check(A, 'pay-later', T0)).toBeNull();
    expect(s.check(A, 'pay-later', T0)).toBeNull();
    expect(s.size).toBe(0);
    expect(s.commit(A, 'pay-later', T0)).toBeNull();
    expect(s.check(A, 'pay-later', T0)).toBe('nonce-reused');
  });

  test('bad keyId/nonce types are a typed error, not a crash', () => {
    const s = openStore(freshDir(), new Clock());
    const codeOf = (fn: () => unknown): string => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(FedaiError);
        return (err as FedaiError).code;
      }
      throw new Error('expected a FedaiError, but the call returned');
    };
    expect(() => s.commit(A, '', T0)).toThrow(FedaiError);
    expect(() => s.check(undefined as unknown as string, 'n', T0)).toThrow(FedaiError);
    expect(codeOf(() => s.commit(A, '', T0))).toBe('invalid-envelope');
    expect(codeOf(() => s.check(undefined as unknown as string, 'n', T0))).toBe('invalid-envelope');
    expect(codeOf(() => s.commit(A, 7 as unknown as string, T0))).toBe('invalid-envelope');
    expect(s.size).toBe(0);
  });

  test('long keyIds and nonces are fine (hashed keys)', () => {
    const s = openStore(freshDir(), new Clock());
    const longKey = 'k'.repeat(10_000);
    const longNonce = '\u{1F600}'.repeat(5_000);
    expect(s.commit(longKey, longNonce, T0)).toBeNull();
    expect(s.commit(longKey, longNonce, T0)).toBe('nonce-reused');
    expect(s.commit(longKey, longNonce + 'x', T0)).toBeNull();
  });
});

describe('expiry', () => {
  test('expired entries are pruned, and their nonces stay refused (out of window)', () => {
    const clock = new Clock();
    const s = openStore(freshDir(), clock);
    expect(s.commit(A, 'a', T0)).toBeNull();
    expect(s.commit(A, 'b', T0 + 10_000)).toBeNull();
    clock.t = T0 + W + 1; // 'a' has expired, 'b' has not
    expect(s.prune()).toBe(1);
    expect(s.size).toBe(1);
    expect(s.commit(A, 'a', T0)).toBe('ts-out-of-window');
    expect(s.commit(A, 'b', T0 + 10_000)).toBe('nonce-reused');
    expect(s.lowWaterMark).toBe(T0);
  });

  test('a clock stepping back after a prune does not readmit a pruned nonce', () => {
    const clock = new Clock();
    const s = openStore(freshDir(), clock);
    expect(s.commit(A, 'a', T0)).toBeNull();
    clock.t = T0 + W + 1;
    expect(s.prune()).toBe(1);
    clock.t = T0; // NTP step back
    expect(s.commit(A, 'a', T0)).toBe('ts-out-of-window');
  });
});

describe('persistence (restart)', () => {
  test('reuse is refused after close and reopen in the same dir', async () => {
    const dir = freshDir();
    const clock = new Clock();
    const s1 = openStore(dir, clock);
    for (let i = 0; i < 50; i++) expect(s1.commit(A, `n${i}`, T0 + i)).toBeNull();
    expect(s1.commit(B, 'n0', T0)).toBeNull();
    await closeStore(s1);

    const s2 = openStore(dir, clock);
    expect(s2.size).toBe(51);
    for (let i = 0; i < 50; i++) expect(s2.commit(A, `n${i}`, T0 + i)).toBe('nonce-reused');
    expect(s2.commit(B, 'n0', T0)).toBe('nonce-reused');
    expect(s2.commit(B, 'n1', T0)).toBeNull();
    await closeStore(s2);
  });

  test('flush() makes commits durable while the store stays open (another process sees them)', async () => {
    const dir = freshDir();
    const clock = new Clock();
    const s = openStore(dir, clock);
    expect(s.commit(A, 'durable', T0)).toBeNull();
    await s.flush();
    // a second, independent process reads the file: the entry is there
    const lmdbPath = createRequire(import.meta.url).resolve('lmdb');
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `const { open } = require(${JSON.stringify(lmdbPath)});
         const root = open({ path: process.argv[1], compression: false });
         const db = root.openDB({ name: 'entries', keyEncoding: 'binary', encoding: 'binary' });
         let n = 0; for (const k of db.getKeys({})) n++;
         process.stdout.write(String(n)); root.close().then(() => process.exit(0));`,
        join(dir, 'nonces.mdb'),
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('1');
  });

  test('a real crash (SIGKILL) after flush loses nothing: the restarted store refuses the replay', async () => {
    const dir = freshDir();
    const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
    const script = join(base, `crash-${++n}.mjs`);
    writeFileSync(
      script,
      `import { NonceStore } from ${JSON.stringify(pathToFileURL(join(repo, 'supervisor/replay/nonce-store.ts')).href)};
       const s = NonceStore.open({ dir: process.argv[2], windowMs: ${W}, maxEntries: 1000, now: () => ${T0} });
       for (let i = 0; i < 100; i++) if (s.commit('${A}', 'crash-' + i, ${T0}) !== null) process.exit(3);
       await s.flush();
       process.kill(process.pid, 'SIGKILL');`,
    );
    const r = spawnSync(process.execPath, ['--import', pathToFileURL(join(repo, 'scripts/register-ts.mjs')).href, script, dir], {
      encoding: 'utf8',
      timeout: 45_000,
    });
    expect(r.signal).toBe('SIGKILL');
    const s = openStore(dir, new Clock());
    expect(s.size).toBe(100);
    for (let i = 0; i < 100; i++) expect(s.commit(A, `crash-${i}`, T0)).toBe('nonce-reused');
    expect(s.commit(A, 'crash-100', T0)).toBeNull();
  }, 60_000);

  test('on open only in-window entries are loaded; expired ones are dropped from disk', async () => {
    const dir = freshDir();
    const clock = new Clock();
    const s1 = openStore(dir, clock);
    expect(s1.commit(A, 'old', T0)).toBeNull();
    expect(s1.commit(A, 'new', T0 + 30_000)).toBeNull();
    await closeStore(s1);

    clock.t = T0 + W + 10_000; // 'old' expired while the node was down
    const s2 = openStore(dir, clock);
    expect(s2.size).toBe(1);
    expect(s2.commit(A, 'old', T0)).toBe('ts-out-of-window');
    expect(s2.commit(A, 'new', T0 + 30_000)).toBe('nonce-reused');
    await closeStore(s2);
  });

  test('close() is idempotent and commit after close is a typed error', async () => {
    const s = openStore(freshDir(), new Clock());
    await Promise.all([s.close(), s.close()]);
    await s.close();
    expect(() => s.commit(A, 'x', T0)).toThrow(FedaiError);
    open.splice(open.indexOf(s), 1);
  });
});

describe('bounded size and the low-water mark', () => {
  test('when full, the oldest entry is evicted and ts ≤ its ts is refused from then on', () => {
    const s = openStore(freshDir(), new Clock(), { maxEntries: 3 });
    expect(s.commit(A, 'a', T0 + 1)).toBeNull();
    expect(s.commit(A, 'b', T0 + 3)).toBeNull();
    expect(s.commit(A, 'c', T0 + 2)).toBeNull();
    expect(s.lowWaterMark).toBe(-1);
    expect(s.commit(A, 'd', T0 + 4)).toBeNull(); // evicts 'a' (ts T0+1, the smallest)
    expect(s.size).toBe(3);
    expect(s.lowWaterMark).toBe(T0 + 1);
    // 'a' is no longer remembered, but its replay is still refused
    expect(s.check(A, 'a', T0 + 1)).toBe('ts-out-of-window');
    expect(s.commit(A, 'a', T0 + 1)).toBe('ts-out-of-window');
    // the others are still remembered
    expect(s.commit(A, 'b', T0 + 3)).toBe('nonce-reused');
    expect(s.commit(A, 'c', T0 + 2)).toBe('nonce-reused');
    // a fresh nonce at or below the mark is refused; above it is fine (and evicts the next oldest, 'c')
    expect(s.commit(B, 'fresh', T0 + 1)).toBe('ts-out-of-window');
    expect(s.commit(B, 'fresh', T0 + 5)).toBeNull();
    expect(s.lowWaterMark).toBe(T0 + 2);
    expect(s.commit(A, 'c', T0 + 2)).toBe('ts-out-of-window');
  });

  test('a newcomer older than everything stored is refused rather than evicting newer entries', () => {
    const s = openStore(freshDir(), new Clock(), { maxEntries: 2 });
    expect(s.commit(A, 'x', T0 + 10)).toBeNull();
    expect(s.commit(A, 'y', T0 + 20)).toBeNull();
    expect(s.commit(A, 'z', T0 + 5)).toBe('ts-out-of-window');
    expect(s.size).toBe(2);
    expect(s.lowWaterMark).toBe(-1); // nothing was evicted, nothing accepted: the mark does not move
    expect(s.commit(A, 'x', T0 + 10)).toBe('nonce-reused');
    expect(s.commit(A, 'y', T0 + 20)).toBe('nonce-reused');
  });

  test('expired entries are pruned before anything is evicted', () => {
    const clock = new Clock();
    const s = openStore(freshDir(), clock, { maxEntries: 2 });
    expect(s.commit(A, 'old', T0)).toBeNull();
    expect(s.commit(A, 'mid', T0 + W)).toBeNull();
    clock.t = T0 + W + 1; // 'old' expired
    expect(s.commit(A, 'new', T0 + W + 1)).toBeNull();
    expect(s.size).toBe(2);
    expect(s.commit(A, 'mid', T0 + W)).toBe('nonce-reused'); // not evicted
    expect(s.lowWaterMark).toBe(T0); // only the expired entry's ts
  });

  test('the mark survives a restart, and so does the bound', async () => {
    const dir = freshDir();
    const clock = new Clock();
    const s1 = openStore(dir, clock, { maxEntries: 5 });
    for (let i = 0; i < 8; i++) expect(s1.commit(A, `n${i}`, T0 + i)).toBeNull();
    expect(s1.lowWaterMark).toBe(T0 + 2);
    await closeStore(s1);

    const s2 = openStore(dir, clock, { maxEntries: 5 });
    expect(s2.lowWaterMark).toBe(T0 + 2);
    expect(s2.size).toBe(5);
    for (let i = 0; i < 3; i++) expect(s2.commit(A, `n${i}`, T0 + i)).toBe('ts-out-of-window');
    for (let i = 3; i < 8; i++) expect(s2.commit(A, `n${i}`, T0 + i)).toBe('nonce-reused');
    await closeStore(s2);

    // reopened with a smaller bound: trimmed to it, the mark rises, nothing becomes replayable
    const s3 = openStore(dir, clock, { maxEntries: 2 });
    expect(s3.size).toBe(2);
    expect(s3.lowWaterMark).toBe(T0 + 5);
    for (let i = 0; i < 6; i++) expect(s3.commit(A, `n${i}`, T0 + i)).toBe('ts-out-of-window');
    for (let i = 6; i < 8; i++) expect(s3.commit(A, `n${i}`, T0 + i)).toBe('nonce-reused');
  });

  test('heap order holds under many random inserts (evictions always take the smallest ts)', () => {
    const s = openStore(freshDir(), new Clock(), { maxEntries: 50 });
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const accepted: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const ts = T0 - W + Math.floor(rnd() * 2 * W);
      const r = s.commit(A, `r${i}`, ts);
      if (r === null) accepted.push(ts);
      expect(s.lowWaterMark < ts || r !== null).toBe(true);
    }
    expect(s.size).toBe(50);
    // every accepted ts above the mark is still remembered: exactly the `size` largest accepted
    const above = accepted.filter((t) => t > s.lowWaterMark);
    expect(above.length).toBe(50);
  });
});

describe('directory handling', () => {
  test('a missing directory (nested) is created with mode 0700', () => {
    const dir = join(freshDir(), 'a', 'b', 'nonces');
    expect(existsSync(dir)).toBe(false);
    const s = openStore(dir, new Clock());
    expect(s.commit(A, 'x', T0)).toBeNull();
    expect(existsSync(join(dir, 'nonces.mdb'))).toBe(true);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  test('a path that is a file is a typed config error', () => {
    const file = join(base, `file-${++n}`);
    writeFileSync(file, 'x');
    let caught: unknown;
    try {
      NonceStore.open({ dir: file, windowMs: W, maxEntries: 10 });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FedaiError);
    expect((caught as FedaiError).code).toBe('config-invalid');
  });

  test('bad options are a typed config error', () => {
    expect(() => NonceStore.open({ dir: freshDir(), windowMs: 0, maxEntries: 10 })).toThrow(FedaiError);
    expect(() => NonceStore.open({ dir: freshDir(), windowMs: W, maxEntries: 0 })).toThrow(FedaiError);
  });

  test.each([
    ['garbage bytes', Buffer.alloc(20_000, 7)],
    ['text', Buffer.from('this is not an lmdb file\n')],
    ['zeros', Buffer.alloc(8192, 0)],
  ])('a corrupt store (%s) is moved aside, logged, and the store fails closed for one window', async (_what, bytes) => {
    const dir = freshDir();
    const clock = new Clock();
    const s1 = openStore(dir, clock);
    expect(s1.commit(A, 'before', T0)).toBeNull();
    await closeStore(s1);
    writeFileSync(join(dir, 'nonces.mdb'), bytes);

    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = createLogger({ level: 'info', destination: sink as never });
    const s2 = openStore(dir, clock, { logger });
    logger.flush();
    await new Promise((r) => setImmediate(r));
    expect(readdirSync(dir).some((f) => f.startsWith('nonces.mdb.corrupt-'))).toBe(true);
    expect(lines.join('')).toMatch(/nonce store was unreadable/);
    // every envelope that could have been accepted before (ts ≤ now + window) is refused
    expect(s2.lowWaterMark).toBe(T0 + W);
    expect(s2.commit(A, 'before', T0)).toBe('ts-out-of-window');
    expect(s2.commit(A, 'brand-new', T0 + W)).toBe('ts-out-of-window');
    clock.t = T0 + W + 1;
    expect(s2.commit(A, 'brand-new', T0 + W + 1)).toBeNull();
    await closeStore(s2);
    // and the mark itself persisted
    const s3 = openStore(dir, clock);
    expect(s3.lowWaterMark).toBe(T0 + W);
    expect(s3.commit(A, 'brand-new', T0 + W + 1)).toBe('nonce-reused');
  });
});
