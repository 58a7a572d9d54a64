import { afterAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { CryptoPool } from '../../supervisor/crypto/crypto-pool.js';
import { checkEnvelopeSignature, checkEnvelopeSignatureOn, signEnvelopeOn } from '../../supervisor/crypto/envelope.js';
import { generateIdentity } from '../../supervisor/crypto/keys.js';
import { verifyDigest } from '../../supervisor/crypto/schnorr.js';

const pools = [new CryptoPool(0), new CryptoPool(2)];
afterAll(async () => {
  for (const p of pools) await p.close();
});

describe.each(pools.map((p) => [p.size, p] as const))('CryptoPool(%i)', (_size, pool) => {
  const id = generateIdentity();

  it('signs what the inline verifier accepts, and verifies what it signs, many at once', async () => {
    const digests = Array.from({ length: 40 }, (_, i) => createHash('sha256').update(`m${i}`).digest());
    const sigs = await Promise.all(digests.map((d) => pool.sign(d, id.secretKey)));
    sigs.forEach((s, i) => expect(verifyDigest(s, digests[i]!, id.publicKey)).toBe(true));
    const oks = await Promise.all(sigs.map((s, i) => pool.verify(s, digests[i]!, id.publicKey)));
    expect(oks.every(Boolean)).toBe(true);
    const wrong = await Promise.all(sigs.map((s, i) => pool.verify(s, digests[(i + 1) % digests.length]!, id.publicKey)));
    expect(wrong.some(Boolean)).toBe(false);
  });

  it('malformed inputs verify false, never throw', async () => {
    const d = createHash('sha256').update('x').digest();
    await expect(pool.verify(new Uint8Array(63), d, id.publicKey)).resolves.toBe(false);
    await expect(pool.verify(new Uint8Array(64), d, id.publicKey)).resolves.toBe(false);
    await expect(pool.verify(new Uint8Array(64).fill(255), d, new Uint8Array(32).fill(255))).resolves.toBe(false);
  });

  it('envelopes signed on the pool verify inline and on the pool; tampering fails', async () => {
    const env = await signEnvelopeOn(pool, { requestId: 'r', n: 1 }, id);
    expect(env.keyId).toBe(id.npub);
    expect(checkEnvelopeSignature(env)).toBeNull();
    await expect(checkEnvelopeSignatureOn(pool, env, { requireNpub: true })).resolves.toBeNull();
    await expect(checkEnvelopeSignatureOn(pool, { ...env, payload: { requestId: 'r', n: 2 } })).resolves.toBe('invalid-signature');
    await expect(checkEnvelopeSignatureOn(pool, { ...env, keyId: id.pubHex }, { requireNpub: true })).resolves.toBe('invalid-key-id');
  });
});

describe('a worker that dies', () => {
  it('strands nothing: its jobs and later ones are computed on the event loop', async () => {
    const pool = new CryptoPool(1);
    pools.push(pool);
    const id = generateIdentity();
    const digests = Array.from({ length: 30 }, (_, i) => createHash('sha256').update(`d${i}`).digest());
    const first = digests.map((d) => pool.sign(d, id.secretKey));
    // a real worker termination, while the batch is in flight
    await (pool as unknown as { lanes: { worker: { terminate(): Promise<number> } }[] }).lanes[0]!.worker.terminate();
    const sigs = await Promise.all(first);
    expect(sigs.every((sg, i) => verifyDigest(sg, digests[i]!, id.publicKey))).toBe(true);
    expect(pool.liveWorkers).toBe(0);
    await expect(pool.verify(sigs[0]!, digests[0]!, id.publicKey)).resolves.toBe(true);
    await expect(pool.verify(sigs[0]!, digests[1]!, id.publicKey)).resolves.toBe(false);
  });
});
