/**
 * The Lightning clients on their own: LND over HTTPS with a self-signed certificate trusted through
 * NODE_LN_TLS_CA_PATH, the backoff policy, and state mapping for LND and CLN lookups.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFrom } from '../../supervisor/config/load-config.js';
import { FedaiError } from '../../supervisor/errors.js';
import { backoffDelayMs, ClnBackend, lightningBackendFromConfig, LndBackend, settlementVerifierFromConfig } from '../../supervisor/payments/lightning/index.js';
import { lndQueryBytes } from '../../supervisor/payments/lightning/lnd.js';
import { FakeCln, FakeLnd } from '../fixtures/lightning/fake-ln.js';

const retry = { maxAttempts: 2, minDelayMs: 10, maxDelayMs: 20 };
let dir: string;
let tls: { key: string; cert: string; certPath: string };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedai-lntls-'));
  const keyPath = join(dir, 'tls.key');
  const certPath = join(dir, 'tls.cert');
  // LND generates exactly this kind of certificate: self-signed EC, SAN for localhost/127.0.0.1
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=fake-lnd', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  tls = { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8'), certPath };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('LND over HTTPS with a self-signed certificate', () => {
  it('works when NODE_LN_TLS_CA_PATH names the certificate, and is 503 without it', async () => {
    const f = await new FakeLnd().start(tls);
    try {
      const base = { NODE_LN_BACKEND: 'lnd', NODE_LND_REST_URL: f.url, NODE_LND_MACAROON_HEX: f.macaroon, NODE_LN_VERIFY_TIMEOUT_MS: '2000', NODE_LN_VERIFY_RETRY_MAX_ATTEMPTS: '1' } as const;
      const trusted = lightningBackendFromConfig(configFrom({ ...base, NODE_LN_TLS_CA_PATH: tls.certPath }))!;
      expect(await trusted.nodePubkey!()).toBe(f.node.pubkey);
      const created = await trusted.createInvoice({ amountSats: 7, memo: 'm', expirySeconds: 60 });
      expect((await trusted.lookupInvoice(created.paymentHash)).state).toBe('open');
      trusted.close?.();

      const untrusted = lightningBackendFromConfig(configFrom(base))!;
      const err = await untrusted.nodePubkey!().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FedaiError);
      expect((err as FedaiError).code).toBe('payment-backend-unavailable');
      untrusted.close?.();
    } finally {
      await f.stop();
    }
  });
});

describe('LND and CLN lookups map states and amounts', () => {
  it('LND: open → settled with preimage, amount and settle time; unknown hash → canceled', async () => {
    const f = await new FakeLnd().start();
    const lnd = new LndBackend({ restUrl: f.url, macaroonHex: f.macaroon, timeoutMs: 1000, retry });
    try {
      const { paymentHash, invoice } = await lnd.createInvoice({ amountSats: 42, memo: 'x', expirySeconds: 600 });
      expect(invoice.startsWith('lnbcrt420n1')).toBe(true);
      expect(await lnd.lookupInvoice(paymentHash)).toEqual({ state: 'open', amountPaidSats: 0 });
      const preimage = f.pay(paymentHash, 42);
      const settled = await lnd.lookupInvoice(paymentHash);
      expect(settled).toMatchObject({ state: 'settled', amountPaidSats: 42, preimage });
      expect(settled.settledAtMs).toBeGreaterThan(Date.now() - 10_000);
      expect((await lnd.lookupInvoice('ab'.repeat(32))).state).toBe('canceled');
    } finally {
      lnd.close();
      await f.stop();
    }
  });

  it('CLN: unpaid → open, paid → settled, unknown → canceled', async () => {
    const f = await new FakeCln().start();
    const cln = new ClnBackend({ restUrl: f.url, rune: f.rune, timeoutMs: 1000, retry });
    try {
      const { paymentHash } = await cln.createInvoice({ amountSats: 3, memo: 'x', expirySeconds: 600 });
      expect((await cln.lookupInvoice(paymentHash)).state).toBe('open');
      const preimage = f.pay(paymentHash);
      expect(await cln.lookupInvoice(paymentHash)).toMatchObject({ state: 'settled', amountPaidSats: 3, preimage });
      expect((await cln.lookupInvoice('cd'.repeat(32))).state).toBe('canceled');
      expect(await cln.nodePubkey()).toBe(f.node.pubkey);
    } finally {
      cln.close();
      await f.stop();
    }
  });
});

describe('LND bytes in query strings', () => {
  it('are padded URL-safe base64, percent-encoded', () => {
    const hex = 'fb'.repeat(32); // base64 has '+', '/' and one '=' of padding
    const q = lndQueryBytes(hex);
    expect(q).toBe(encodeURIComponent(Buffer.from(hex, 'hex').toString('base64url') + '='));
    expect(q.endsWith('%3D')).toBe(true);
    expect(q).not.toMatch(/[+/]/);
    expect(Buffer.from(decodeURIComponent(q), 'base64url').toString('hex')).toBe(hex);
  });
});

describe('retry policy', () => {
  it('backs off exponentially, capped, with jitter between half and all of the step', () => {
    const p = { maxAttempts: 5, minDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffDelayMs(1, p, () => 0)).toBe(50);
    expect(backoffDelayMs(1, p, () => 1)).toBe(100);
    expect(backoffDelayMs(2, p, () => 1)).toBe(200);
    expect(backoffDelayMs(3, p, () => 1)).toBe(400);
    expect(backoffDelayMs(5, p, () => 1)).toBe(1000);
    expect(backoffDelayMs(9, p, () => 0.5)).toBe(750);
  });

  it('the verifier is built only when NODE_LN_VERIFY_URL is set; backends only for lnd/cln', () => {
    expect(settlementVerifierFromConfig(configFrom())).toBeUndefined();
    expect(lightningBackendFromConfig(configFrom())).toBeUndefined();
    const v = settlementVerifierFromConfig(configFrom({ NODE_LN_VERIFY_URL: 'http://127.0.0.1:9/verify' }));
    expect(v).toBeDefined();
    v!.close?.();
  });
});
