import { describe, expect, it } from '@jest/globals';
import { bech32 } from '@scure/base';
import { decodeBolt11, parseHrp, wordsToBytes } from '../../supervisor/payments/bolt11.js';
import { FedaiError } from '../../supervisor/errors.js';
import { encodeBolt11, lnNode, preimagePair } from '../fixtures/lightning/bolt11-encode.js';

// Test vectors from lightning/bolts 11-payment-encoding.md (public specification data).
const SPEC_PAYEE = '03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad';
const SPEC_HASH = '0001020304050607080900010203040506070809000102030405060708090102';
const SPEC_DONATION =
  'lnbc1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6twvus8g6rfwvs8qun0dfjkxaq9qrsgq357wnc5r2ueh7ck6q93dj32dlqnls087fxdwk8qakdyafkq3yap9us6v52vjjsrvywa6rt52cm9r9zqt8r2t7mlcwspyetp5h2tztugp9lfyql';
const SPEC_COFFEE =
  'lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl77nj30yxdy8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vgpfna3rh';
const SPEC_UPPER =
  'LNBC25M1PVJLUEZPP5QQQSYQCYQ5RQWZQFQQQSYQCYQ5RQWZQFQQQSYQCYQ5RQWZQFQYPQDQ5VDHKVEN9V5SXYETPDEESSP5ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYGS9Q5SQQQQQQQQQQQQQQQQSGQ2A25DXL5HRNTDTN6ZVYDT7D66HYZSYHQS4WDYNAVYS42XGL6SGX9C4G7ME86A27T07MDTFRY458RTJR0V92CNMSWPSJSCGT2VCSE3SGPZ3UAPA';
const SPEC_PICO =
  'lnbc9678785340p1pwmna7lpp5gc3xfm08u9qy06djf8dfflhugl6p7lgza6dsjxq454gxhj9t7a0sd8dgfkx7cmtwd68yetpd5s9xar0wfjn5gpc8qhrsdfq24f5ggrxdaezqsnvda3kkum5wfjkzmfqf3jkgem9wgsyuctwdus9xgrcyqcjcgpzgfskx6eqf9hzqnteypzxz7fzypfhg6trddjhygrcyqezcgpzfysywmm5ypxxjemgw3hxjmn8yptk7untd9hxwg3q2d6xjcmtv4ezq7pqxgsxzmnyyqcjqmt0wfjjq6t5v4khxsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygsxqyjw5qcqp2rzjq0gxwkzc8w6323m55m4jyxcjwmy7stt9hwkwe2qxmy8zpsgg7jcuwz87fcqqeuqqqyqqqqlgqqqqn3qq9q9qrsgqrvgkpnmps664wgkp43l22qsgdw4ve24aca4nymnxddlnp8vh9v2sdxlu5ywdxefsfvm0fq3sesf08uf6q9a2ke0hc9j6z6wlxg5z5kqpu2v9wz';
const SPEC_BAD_CHECKSUM =
  'lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrnt';
const SPEC_BAD_MULTIPLIER =
  'lnbc2500x1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpusp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9qrsgqrrzc4cvfue4zp3hggxp47ag7xnrlr8vgcmkjxk3j5jqethnumgkpqp23z9jclu3v0a7e0aruz366e9wqdykw6dxhdzcjjhldxq0w6wgqcnu43j';
const SPEC_SUB_MSAT =
  'lnbc2500000001p1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpusp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9qrsgq0lzc236j96a95uv0m3umg28gclm5lqxtqqwk32uuk4k6673k6n5kfvx3d2h8s295fad45fdhmusm8sjudfhlf6dcsxmfvkeywmjdkxcp99202x';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof FedaiError ? err.code : `not a FedaiError: ${String(err)}`;
  }
  return undefined;
}

describe('BOLT11 specification vectors', () => {
  it('decodes the donation invoice and recovers the payee from the signature', () => {
    const inv = decodeBolt11(SPEC_DONATION);
    expect(inv.network).toBe('bc');
    expect(inv.amountMsat).toBeUndefined();
    expect(inv.paymentHash).toBe(SPEC_HASH);
    expect(inv.timestampSec).toBe(1496314658);
    expect(inv.expirySec).toBe(3600);
    expect(inv.paymentSecret).toBe('11'.repeat(32));
    expect(inv.description).toBe('Please consider supporting this project');
    expect(inv.payeePubkey).toBe(SPEC_PAYEE);
    expect(inv.payeeFromField).toBe(false);
  });

  it('decodes amounts with multipliers, expiry and upper case', () => {
    const coffee = decodeBolt11(SPEC_COFFEE);
    expect(coffee.amountMsat).toBe(250_000_000n);
    expect(coffee.amountSats).toBe(250_000);
    expect(coffee.expirySec).toBe(60);
    expect(coffee.expiresAtMs).toBe((1496314658 + 60) * 1000);
    expect(coffee.description).toBe('1 cup coffee');
    expect(coffee.payeePubkey).toBe(SPEC_PAYEE);

    const upper = decodeBolt11(SPEC_UPPER); // also sets unknown ODD feature bit 99: allowed
    expect(upper.amountMsat).toBe(2_500_000_000n);
    expect(upper.paymentHash).toBe(SPEC_HASH);
    expect(upper.payeePubkey).toBe(SPEC_PAYEE);

    const pico = decodeBolt11(SPEC_PICO);
    expect(pico.amountMsat).toBe(967_878_534n);
    expect(pico.amountSats).toBe(967_878);
    expect(pico.paymentHash).toBe('462264ede7e14047e9b249da94fefc47f41f7d02ee9b091815a5506bc8abf75f');
    expect(pico.expirySec).toBe(604_800);
    expect(pico.minFinalCltvExpiry).toBe(10);
  });

  it('rejects the specification invalid vectors with invoice-invalid', () => {
    for (const bad of [SPEC_BAD_CHECKSUM, SPEC_BAD_MULTIPLIER, SPEC_SUB_MSAT, '', 'lnbc', 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4']) {
      expect(code(() => decodeBolt11(bad))).toBe('invoice-invalid');
    }
    // mixed case
    expect(code(() => decodeBolt11('LNBC' + SPEC_COFFEE.slice(4)))).toBe('invoice-invalid');
  });

  it('refuses when the expected payee is another node', () => {
    expect(decodeBolt11(SPEC_COFFEE, { expectedPayee: SPEC_PAYEE.toUpperCase() }).payeePubkey).toBe(SPEC_PAYEE);
    expect(code(() => decodeBolt11(SPEC_COFFEE, { expectedPayee: lnNode().pubkey }))).toBe('invoice-invalid');
  });
});

describe('BOLT11 human-readable part', () => {
  it('parses networks and multipliers', () => {
    expect(parseHrp('lnbcrt10u')).toEqual({ network: 'bcrt', amountMsat: 1_000_000n });
    expect(parseHrp('lntbs1m')).toEqual({ network: 'tbs', amountMsat: 100_000_000n });
    expect(parseHrp('lntb')).toEqual({ network: 'tb' });
    expect(parseHrp('lnbc10p')).toEqual({ network: 'bc', amountMsat: 1n });
    expect(parseHrp('lnbc1')).toEqual({ network: 'bc', amountMsat: 100_000_000_000n });
    for (const bad of ['lnbc11p', 'lnbc0250u', 'lnbc0', 'lnxx1u', 'lnbc2500um', 'bc1u']) expect(code(() => parseHrp(bad))).toBe('invoice-invalid');
  });
});

describe('BOLT11 invoices signed by a test node', () => {
  const node = lnNode();
  const { paymentHash } = preimagePair();

  it('round-trips amount, hash, expiry, cltv and payee (with and without n)', () => {
    for (const includePayee of [false, true]) {
      const inv = encodeBolt11(node, { amountMsat: 21_000n, paymentHash, expirySec: 600, minFinalCltv: 40, timestampSec: 1_800_000_000, includePayee, featureBits: [9, 15, 17] });
      expect(inv.length).toBeGreaterThan(90);
      const d = decodeBolt11(inv, { expectedPayee: node.pubkey });
      expect(d.amountMsat).toBe(21_000n);
      expect(d.amountSats).toBe(21);
      expect(d.paymentHash).toBe(paymentHash);
      expect(d.expirySec).toBe(600);
      expect(d.expiresAtMs).toBe(1_800_000_600_000);
      expect(d.minFinalCltvExpiry).toBe(40);
      expect(d.payeePubkey).toBe(node.pubkey);
      expect(d.payeeFromField).toBe(includePayee);
      expect(d.network).toBe('bcrt');
    }
  });

  it('accepts every multiplier form', () => {
    for (const multiplier of ['m', 'u', 'n', 'p'] as const) {
      const inv = encodeBolt11(node, { amountMsat: 100_000_000n, multiplier, paymentHash });
      expect(decodeBolt11(inv).amountMsat).toBe(100_000_000n);
    }
  });

  it('rejects a tampered invoice (checksum) and a re-signed data part (signature under n)', () => {
    const inv = encodeBolt11(node, { amountMsat: 5000n, paymentHash, includePayee: true });
    const i = 30;
    const tampered = inv.slice(0, i) + (inv[i] === 'q' ? 'p' : 'q') + inv.slice(i + 1);
    expect(code(() => decodeBolt11(tampered))).toBe('invoice-invalid');
    // `n` names another node: the signature (by `node`) does not verify under it.
    const other = lnNode();
    const lying = encodeBolt11(node, { amountMsat: 5000n, paymentHash, payeeOverride: other.pubkey });
    expect(code(() => decodeBolt11(lying))).toBe('invoice-invalid');
  });

  it('rejects an altered amount even with a valid checksum', () => {
    const inv = encodeBolt11(node, { amountMsat: 5_000_000n, paymentHash });
    const { prefix, words } = bech32.decode(inv as `${string}1${string}`, 10_000);
    const forged = bech32.encode(prefix.replace('50u', '90u'), words, 10_000);
    expect(forged).not.toBe(inv);
    // the recovered key is some other key, so only the expected-payee check can catch it
    expect(decodeBolt11(forged).payeePubkey).not.toBe(node.pubkey);
    expect(code(() => decodeBolt11(forged, { expectedPayee: node.pubkey }))).toBe('invoice-invalid');
    // with an n field the forgery fails outright
    const withN = encodeBolt11(node, { amountMsat: 5_000_000n, paymentHash, includePayee: true });
    const d2 = bech32.decode(withN as `${string}1${string}`, 10_000);
    expect(code(() => decodeBolt11(bech32.encode(d2.prefix.replace('50u', '90u'), d2.words, 10_000)))).toBe('invoice-invalid');
  });

  it('rejects unknown even feature bits but accepts unknown odd ones', () => {
    expect(code(() => decodeBolt11(encodeBolt11(node, { amountMsat: 1000n, paymentHash, featureBits: [14, 100] })))).toBe('invoice-invalid');
    expect(decodeBolt11(encodeBolt11(node, { amountMsat: 1000n, paymentHash, featureBits: [14, 101] })).features).toBe((1n << 14n) | (1n << 101n));
  });

  it('requires exactly one payment hash', () => {
    expect(code(() => decodeBolt11(encodeBolt11(node, { amountMsat: 1000n, paymentHash, omitPaymentHash: true })))).toBe('invoice-invalid');
    expect(code(() => decodeBolt11(encodeBolt11(node, { amountMsat: 1000n, paymentHash, duplicatePaymentHash: true })))).toBe('invoice-invalid');
    // a wrong-length p field is skipped, not trusted: with no other p the invoice is invalid
    const shortP = encodeBolt11(node, { amountMsat: 1000n, paymentHash, omitPaymentHash: true, extraFields: [['p', new Array(51).fill(1)]] });
    expect(code(() => decodeBolt11(shortP))).toBe('invoice-invalid');
  });

  it('accepts a lightning: prefix and a description hash', () => {
    const inv = encodeBolt11(node, { amountMsat: 1000n, paymentHash, descriptionHash: 'ab'.repeat(32) });
    const d = decodeBolt11('lightning:' + inv.toUpperCase());
    expect(d.descriptionHash).toBe('ab'.repeat(32));
    expect(d.description).toBeUndefined();
  });

  it('wordsToBytes pads only when asked', () => {
    expect(Array.from(wordsToBytes([31, 31], false))).toEqual([255]);
    expect(Array.from(wordsToBytes([31, 31], true))).toEqual([255, 192]);
  });
});
