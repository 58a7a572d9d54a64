/**
 * Spent receipts and issued invoices, persisted in lmdb under `<NODE_DATA_DIR>/receipts`.
 *
 * A receipt is spent under two keys at once: its signer (x-only pubkey hex, so npub and hex keyIds of
 * the same key collide) plus its envelope nonce, and — when the receipt names or implies one — its
 * Lightning payment hash. A second receipt that reuses either key is refused. `isSpent` is the read-only
 * check the gate runs during verification; `spend` is the atomic check-and-insert the gate runs only when
 * the request is admitted (a later 429/503 must not burn a receipt). `spend` runs in one LMDB write
 * transaction, which is serialised across processes sharing the directory, so two concurrent spends of
 * the same receipt cannot both succeed.
 *
 * Retention is bounded: every entry carries keepUntilMs and is pruned after it (on open, every
 * PRUNE_EVERY spends, and on a timer). The gate sets keepUntilMs past the last moment the receipt could
 * still pass the age check (paidAtMs + NODE_RECEIPT_MAX_AGE_MS + skew + margin); payment hashes are
 * kept longer (see payment-gate.ts) because a fresh receipt could wrap an old hash.
 */
import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';

export interface ReceiptKeys {
  /** Receipt signer: x-only public key, hex (normalise npubs before calling). */
  readonly signer: string;
  readonly nonce: string;
  /** Lightning payment hash, hex, lowercase. */
  readonly paymentHash?: string;
}

export interface SpendInfo {
  readonly requestId: string;
  readonly amountSats: number;
  readonly paidAtMs: number;
  /** When the receipt key may be forgotten. */
  readonly keepUntilMs: number;
  /** When the payment-hash key may be forgotten (defaults to keepUntilMs). */
  readonly hashKeepUntilMs?: number;
}

export interface IssuedInvoice {
  readonly requestId: string;
  readonly amountSats: number;
  readonly expiresAtMs: number;
}

interface SpentEntry {
  k: 'spent';
  requestId: string;
  amountSats: number;
  paidAtMs: number;
  spentAtMs: number;
  keepUntilMs: number;
}

interface IssuedEntry extends IssuedInvoice {
  k: 'issued';
  keepUntilMs: number;
}

type Entry = SpentEntry | IssuedEntry;

export interface ReceiptStoreOptions {
  now?: () => number;
  /** Prune interval; 0 disables the timer (pruning still runs on open and every PRUNE_EVERY spends). */
  pruneIntervalMs?: number;
}

const PRUNE_EVERY = 1000;

export function receiptKey(signer: string, nonce: string): string {
  return `r:${signer.toLowerCase()}:${nonce}`;
}

export function hashKey(paymentHash: string): string {
  return `h:${paymentHash.toLowerCase()}`;
}

function issuedKey(paymentHash: string): string {
  return `i:${paymentHash.toLowerCase()}`;
}

export class ReceiptStore {
  private readonly root: RootDatabase;
  private readonly db: Database<Entry, string>;
  /** [keepUntilMs, key] → 1: the prune index, so pruning reads only what is due. */
  private readonly expiry: Database<number, [number, string]>;
  private readonly now: () => number;
  private spendsSincePrune = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(root: RootDatabase, opts: ReceiptStoreOptions) {
    this.root = root;
    this.db = root.openDB<Entry, string>({ name: 'entries', compression: false });
    this.expiry = root.openDB<number, [number, string]>({ name: 'expiry' });
    this.now = opts.now ?? Date.now;
    const every = opts.pruneIntervalMs ?? 60_000;
    if (every > 0) {
      this.timer = setInterval(() => {
        try {
          this.prune();
        } catch {
          /* a failed prune only delays forgetting */
        }
      }, every);
      this.timer.unref();
    }
  }

  /** Opens (creating) the store in `dir` (normally `<NODE_DATA_DIR>/receipts`). */
  static open(dir: string, opts: ReceiptStoreOptions = {}): ReceiptStore {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const root = open({ path: dir, maxDbs: 4 });
    const store = new ReceiptStore(root, opts);
    store.prune();
    return store;
  }

  private keysOf(keys: ReceiptKeys): string[] {
    const out = [receiptKey(keys.signer, keys.nonce)];
    if (keys.paymentHash) out.push(hashKey(keys.paymentHash));
    return out;
  }

  private live(key: string, now: number): boolean {
    const e = this.db.get(key);
    return e !== undefined && e.keepUntilMs >= now;
  }

  /** True when the receipt (signer+nonce) or its payment hash was spent and is still remembered. */
  isSpent(keys: ReceiptKeys): boolean {
    const now = this.now();
    return this.keysOf(keys).some((k) => this.live(k, now));
  }

  /**
   * Atomically marks both keys spent; resolves true once committed (visible to every process, and kept
   * by lmdb across a process crash), false (nothing written) when either key is already spent. The
   * check-and-insert runs inside an lmdb write transaction batched with the other writes of the moment
   * (one commit, one disk sync, off the event loop), so concurrent paid requests do not queue behind
   * each other's fsync. durable() tells when it is also synced to disk (power loss).
   */
  async spend(keys: ReceiptKeys, info: SpendInfo): Promise<boolean> {
    const now = this.now();
    const rKey = receiptKey(keys.signer, keys.nonce);
    const hKey = keys.paymentHash ? hashKey(keys.paymentHash) : undefined;
    const base = { k: 'spent' as const, requestId: info.requestId, amountSats: info.amountSats, paidAtMs: info.paidAtMs, spentAtMs: now };
    const ok = await this.root.transaction(() => {
      if (this.live(rKey, now) || (hKey !== undefined && this.live(hKey, now))) return false;
      this.put(rKey, { ...base, keepUntilMs: info.keepUntilMs });
      if (hKey !== undefined) this.put(hKey, { ...base, keepUntilMs: Math.max(info.keepUntilMs, info.hashKeepUntilMs ?? 0) });
      return true;
    });
    if (!ok) return false;
    if (++this.spendsSincePrune >= PRUNE_EVERY) {
      this.spendsSincePrune = 0;
      this.prune();
    }
    return true;
  }

  /** Resolves once every write committed so far is synced to disk; never rejects. */
  durable(): Promise<void> {
    return Promise.resolve(this.root.flushed as PromiseLike<unknown>).then(
      () => undefined,
      () => undefined,
    );
  }

  /** Remembers an invoice this node issued in a 402 (payment hash → requestId and price); resolves once on disk. */
  async recordIssued(paymentHash: string, invoice: IssuedInvoice, keepUntilMs: number): Promise<void> {
    const key = issuedKey(paymentHash);
    await this.root.transaction(() => this.put(key, { k: 'issued', ...invoice, keepUntilMs }));
    await this.root.flushed;
  }

  /** Inside a write transaction: writes the entry and its prune-index row (replacing an older row). */
  private put(key: string, entry: Entry): void {
    const old = this.db.get(key);
    if (old) this.expiry.removeSync([old.keepUntilMs, key]);
    this.db.putSync(key, entry);
    this.expiry.putSync([entry.keepUntilMs, key], 1);
  }

  issued(paymentHash: string): IssuedInvoice | undefined {
    const e = this.db.get(issuedKey(paymentHash));
    if (!e || e.k !== 'issued' || e.keepUntilMs < this.now()) return undefined;
    return { requestId: e.requestId, amountSats: e.amountSats, expiresAtMs: e.expiresAtMs };
  }

  /** Deletes entries past keepUntilMs; returns how many. */
  prune(): number {
    if (this.closed) return 0;
    const now = this.now();
    const due = [...this.expiry.getKeys({ end: [now, ''] })] as [number, string][];
    if (due.length === 0) return 0;
    let removed = 0;
    this.root.transactionSync(() => {
      for (const row of due) {
        this.expiry.removeSync(row);
        const e = this.db.get(row[1]);
        if (e && e.keepUntilMs < now) {
          this.db.removeSync(row[1]);
          removed++;
        }
      }
    });
    return removed;
  }

  /** Entries currently held (spent keys and issued invoices), for tests and metrics. */
  size(): number {
    return this.db.getCount();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.root.close();
  }
}
