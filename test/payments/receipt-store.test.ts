import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReceiptStore } from '../../supervisor/payments/receipt-store.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'fedai-receipts-'));
  dirs.push(d);
  return join(d, 'receipts');
}
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

const signer = 'aa'.repeat(32);
const info = (now: number) => ({ requestId: 'req-1', amountSats: 5, paidAtMs: now, keepUntilMs: now + 60_000 });

describe('ReceiptStore', () => {
  it('isSpent is read-only; spend is check-and-insert', async () => {
    const store = ReceiptStore.open(tmp(), { pruneIntervalMs: 0 });
    const keys = { signer, nonce: 'n1', paymentHash: 'bb'.repeat(32) };
    expect(store.isSpent(keys)).toBe(false);
    expect(store.isSpent(keys)).toBe(false);
    expect(await store.spend(keys, info(Date.now()))).toBe(true);
    expect(store.isSpent(keys)).toBe(true);
    expect(await store.spend(keys, info(Date.now()))).toBe(false);
    await store.close();
  });

  it('refuses a new receipt that reuses a spent payment hash, and a spent signer+nonce with a new hash', async () => {
    const store = ReceiptStore.open(tmp(), { pruneIntervalMs: 0 });
    expect(await store.spend({ signer, nonce: 'n1', paymentHash: 'cc'.repeat(32) }, info(Date.now()))).toBe(true);
    expect(store.isSpent({ signer, nonce: 'n2', paymentHash: 'CC'.repeat(32) })).toBe(true);
    expect(await store.spend({ signer, nonce: 'n2', paymentHash: 'cc'.repeat(32) }, info(Date.now()))).toBe(false);
    expect(await store.spend({ signer: signer.toUpperCase(), nonce: 'n1', paymentHash: 'dd'.repeat(32) }, info(Date.now()))).toBe(false);
    // nothing was written by the refused spends: n2 and dd… are still free
    expect(store.isSpent({ signer, nonce: 'n2' })).toBe(false);
    expect(store.isSpent({ signer: 'ee'.repeat(32), nonce: 'x', paymentHash: 'dd'.repeat(32) })).toBe(false);
    // other signers may use the same nonce
    expect(await store.spend({ signer: 'ff'.repeat(32), nonce: 'n1' }, info(Date.now()))).toBe(true);
    await store.close();
  });

  it('only one of many same-turn spends of one receipt succeeds', async () => {
    const store = ReceiptStore.open(tmp(), { pruneIntervalMs: 0 });
    const results = await Promise.all(Array.from({ length: 20 }, async () => store.spend({ signer, nonce: 'race' }, info(Date.now()))));
    expect(results.filter(Boolean)).toHaveLength(1);
    await store.close();
  });

  it('survives a restart: spent before close is refused after reopen', async () => {
    const dir = tmp();
    let store = ReceiptStore.open(dir, { pruneIntervalMs: 0 });
    expect(await store.spend({ signer, nonce: 'persist', paymentHash: '11'.repeat(32) }, info(Date.now()))).toBe(true);
    await store.recordIssued('22'.repeat(32), { requestId: 'req-9', amountSats: 7, expiresAtMs: Date.now() + 1000 }, Date.now() + 60_000);
    await store.close();
    store = ReceiptStore.open(dir, { pruneIntervalMs: 0 });
    expect(store.isSpent({ signer, nonce: 'persist' })).toBe(true);
    expect(await store.spend({ signer, nonce: 'other', paymentHash: '11'.repeat(32) }, info(Date.now()))).toBe(false);
    expect(store.issued('22'.repeat(32))).toMatchObject({ requestId: 'req-9', amountSats: 7 });
    await store.close();
  });

  it('prunes entries after keepUntilMs (bounded retention), keeping longer-lived hash keys', async () => {
    let now = 1_000_000;
    const dir = tmp();
    const store = ReceiptStore.open(dir, { now: () => now, pruneIntervalMs: 0 });
    await store.spend({ signer, nonce: 'old', paymentHash: '33'.repeat(32) }, { requestId: 'r', amountSats: 1, paidAtMs: now, keepUntilMs: now + 1000, hashKeepUntilMs: now + 5000 });
    await store.spend({ signer, nonce: 'young' }, { requestId: 'r', amountSats: 1, paidAtMs: now, keepUntilMs: now + 10_000 });
    await store.recordIssued('44'.repeat(32), { requestId: 'r', amountSats: 1, expiresAtMs: now + 500 }, now + 2000);
    expect(store.size()).toBe(4);
    now += 1500;
    expect(store.isSpent({ signer, nonce: 'old' })).toBe(false); // expired entries do not count even before pruning
    expect(store.prune()).toBe(1);
    expect(store.isSpent({ signer, nonce: 'x', paymentHash: '33'.repeat(32) })).toBe(true);
    now += 4000;
    expect(store.prune()).toBe(2);
    expect(store.issued('44'.repeat(32))).toBeUndefined();
    expect(store.size()).toBe(1);
    expect(store.isSpent({ signer, nonce: 'young' })).toBe(true);
    await store.close();
    // pruning also runs on open
    now += 10_000;
    const reopened = ReceiptStore.open(dir, { now: () => now, pruneIntervalMs: 0 });
    expect(reopened.size()).toBe(0);
    await reopened.close();
  });
});

describe('ReceiptStore across processes', () => {
  it('two processes spending the same receipts: each one is won exactly once', async () => {
    const { execFile } = await import('node:child_process');
    const dir = tmp();
    const N = 300; // nonces 0..299 share 256 payment hashes: only the first 256 can ever be spent
    const startAt = Date.now() + 1500;
    const run = () =>
      new Promise<number>((resolve, reject) =>
        execFile(process.execPath, ['--import', './scripts/register-ts.mjs', 'test/payments/spend-worker.ts', dir, String(N), String(startAt)], { cwd: process.cwd(), timeout: 30_000 }, (err, stdout) =>
          err ? reject(err) : resolve(Number(stdout)),
        ),
      );
    const [a, b] = await Promise.all([run(), run()]);
    expect(a + b).toBe(256);
    const store = ReceiptStore.open(dir, { pruneIntervalMs: 0 });
    expect(store.isSpent({ signer, nonce: 'n-0' })).toBe(false); // another signer
    expect(store.isSpent({ signer: 'ab'.repeat(32), nonce: 'n-299' })).toBe(false); // its hash was taken by n-43
    expect(store.isSpent({ signer: 'ab'.repeat(32), nonce: 'n-255' })).toBe(true);
    await store.close();
  }, 40_000);
});
