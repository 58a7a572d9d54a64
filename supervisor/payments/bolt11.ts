/**
 * BOLT11 invoice decoding and signature verification (lightning/bolts 11-payment-encoding), written
 * here rather than taken from npm: the decoder is ~250 lines over @scure/base's bech32 and the
 * libsecp256k1 ECDSA of supervisor/crypto/ecdsa.ts (native or WebAssembly, as the Schnorr signatures),
 * both already dependencies, while the `bolt11` package pulls a native `secp256k1` module plus
 * bn.js/bitcoinjs helpers for the same job.
 *
 * decodeBolt11 throws FedaiError('invoice-invalid') for anything that does not decode, does not carry
 * exactly one payment hash, sets an unknown even feature bit, or whose signature does not verify (under
 * `n` when present, else the recovered key) or was made by another node than `expectedPayee`.
 */
import { bech32 } from '@scure/base';
import { sha256 } from '@noble/hashes/sha2.js';
import { recoverEcdsa, verifyEcdsa } from '../crypto/ecdsa.js';
import { FedaiError } from '../errors.js';

export type Bolt11Network = 'bc' | 'tb' | 'tbs' | 'bcrt' | 'sb';

export interface DecodedInvoice {
  /** Lowercased invoice text (without a `lightning:` prefix). */
  readonly invoice: string;
  readonly hrp: string;
  readonly network: Bolt11Network;
  /** Absent for an amountless invoice. */
  readonly amountMsat?: bigint;
  /** floor(amountMsat / 1000). */
  readonly amountSats?: number;
  readonly timestampSec: number;
  /** `x`, default 3600. */
  readonly expirySec: number;
  /** (timestamp + expiry) in ms. */
  readonly expiresAtMs: number;
  /** `p`, 64 hex. */
  readonly paymentHash: string;
  /** `s`, 64 hex. */
  readonly paymentSecret?: string;
  /** `d`. */
  readonly description?: string;
  /** `h`, 64 hex. */
  readonly descriptionHash?: string;
  /** `c`, default 18. */
  readonly minFinalCltvExpiry: number;
  /** Feature bits from `9` (bit i set ⇔ (features >> i) & 1). */
  readonly features: bigint;
  /** 33-byte compressed payee key, hex: `n` when present (and the signature verifies under it), else recovered. */
  readonly payeePubkey: string;
  /** True when the invoice carried an `n` field. */
  readonly payeeFromField: boolean;
}

export interface DecodeOptions {
  /** Compressed (66 hex) key of the Lightning node that must have signed the invoice. */
  readonly expectedPayee?: string;
}

/** Longest invoice accepted (bech32's own 90-character limit does not apply to BOLT11). */
export const MAX_INVOICE_LENGTH = 7089;

const SIG_WORDS = 104; // 65 bytes (64-byte compact signature + recovery id) = 520 bits
const TIMESTAMP_WORDS = 7; // 35 bits
const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const TAG = {
  p: CHARSET.indexOf('p'),
  s: CHARSET.indexOf('s'),
  d: CHARSET.indexOf('d'),
  h: CHARSET.indexOf('h'),
  n: CHARSET.indexOf('n'),
  x: CHARSET.indexOf('x'),
  c: CHARSET.indexOf('c'),
  features: CHARSET.indexOf('9'),
} as const;

/**
 * Feature bits (BOLT 9, context "9" = invoice) this decoder understands: var_onion_optin 8/9,
 * payment_secret 14/15, basic_mpp 16/17, option_route_blinding 24/25, option_payment_metadata 48/49.
 * Any other even (compulsory) bit makes the invoice invalid; odd bits are optional and ignored.
 */
const KNOWN_FEATURE_BITS = new Set([8, 9, 14, 15, 16, 17, 24, 25, 48, 49]);

const MSAT_PER_BTC = 100_000_000_000n;

function invalid(detail: string): FedaiError {
  return new FedaiError('invoice-invalid', { details: [detail] });
}

/** 5-bit words → bytes. `pad`: keep a final partial byte (zero-filled), as the signing data does. */
export function wordsToBytes(words: ArrayLike<number>, pad: boolean): Uint8Array {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < words.length; i++) {
    acc = ((acc << 5) | words[i]) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  if (pad && bits > 0) out.push((acc << (8 - bits)) & 0xff);
  return Uint8Array.from(out);
}

function wordsToInt(words: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < words.length; i++) n = n * 32 + words[i];
  return n;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Parses the human-readable part: `ln` + network + optional amount with multiplier. */
export function parseHrp(hrp: string): { network: Bolt11Network; amountMsat?: bigint } {
  const m = /^ln(bcrt|bc|tbs|tb|sb)(?:(\d+)([munp])?)?$/.exec(hrp);
  if (!m) throw invalid(`unknown invoice prefix "${hrp.slice(0, 16)}"`);
  const network = m[1] as Bolt11Network;
  if (m[2] === undefined) return { network };
  if (m[2].length > 1 && m[2].startsWith('0')) throw invalid('amount has leading zeros');
  const value = BigInt(m[2]);
  let msat: bigint;
  switch (m[3]) {
    case undefined:
      msat = value * MSAT_PER_BTC;
      break;
    case 'm':
      msat = value * 100_000_000n;
      break;
    case 'u':
      msat = value * 100_000n;
      break;
    case 'n':
      msat = value * 100n;
      break;
    case 'p':
      if (value % 10n !== 0n) throw invalid('pico-BTC amount is not a whole number of millisatoshis');
      msat = value / 10n;
      break;
    default:
      throw invalid('unknown amount multiplier');
  }
  if (msat <= 0n) throw invalid('amount is zero');
  return { network, amountMsat: msat };
}

export function decodeBolt11(input: string, opts: DecodeOptions = {}): DecodedInvoice {
  if (typeof input !== 'string' || input.length === 0) throw invalid('invoice is empty');
  let s = input.trim();
  if (/^lightning:/i.test(s)) s = s.slice('lightning:'.length);
  if (s.length > MAX_INVOICE_LENGTH) throw invalid('invoice is too long');
  if (s !== s.toLowerCase() && s !== s.toUpperCase()) throw invalid('invoice mixes upper and lower case');
  s = s.toLowerCase();

  let decoded: { prefix: string; words: number[] };
  try {
    decoded = bech32.decode(s as `${string}1${string}`, MAX_INVOICE_LENGTH);
  } catch {
    throw invalid('not valid bech32 (bad checksum or characters)');
  }
  const { prefix: hrp, words } = decoded;
  const { network, amountMsat } = parseHrp(hrp);
  if (words.length < TIMESTAMP_WORDS + SIG_WORDS) throw invalid('invoice data is too short');

  const dataWords = words.slice(0, words.length - SIG_WORDS);
  const sigBytes = wordsToBytes(words.slice(words.length - SIG_WORDS), false);
  const sig64 = sigBytes.subarray(0, 64);
  const recovery = sigBytes[64];
  if (recovery > 3) throw invalid('signature recovery id out of range');

  const timestampSec = wordsToInt(dataWords.slice(0, TIMESTAMP_WORDS));
  let paymentHash: string | undefined;
  let paymentHashCount = 0;
  let paymentSecret: string | undefined;
  let description: string | undefined;
  let descriptionHash: string | undefined;
  let payeeField: Uint8Array | undefined;
  let expirySec = 3600;
  let minFinalCltvExpiry = 18;
  let features = 0n;

  let pos = TIMESTAMP_WORDS;
  while (pos < dataWords.length) {
    if (pos + 3 > dataWords.length) throw invalid('truncated tagged field');
    const type = dataWords[pos];
    const len = dataWords[pos + 1] * 32 + dataWords[pos + 2];
    const start = pos + 3;
    const end = start + len;
    if (end > dataWords.length) throw invalid('tagged field runs past the signature');
    const field = dataWords.slice(start, end);
    pos = end;
    switch (type) {
      case TAG.p:
        if (len !== 52) break; // wrong length: skipped, not trusted
        paymentHashCount++;
        paymentHash = hex(wordsToBytes(field, false).subarray(0, 32));
        break;
      case TAG.s:
        if (len === 52) paymentSecret = hex(wordsToBytes(field, false).subarray(0, 32));
        break;
      case TAG.h:
        if (len === 52) descriptionHash = hex(wordsToBytes(field, false).subarray(0, 32));
        break;
      case TAG.n:
        if (len === 53) payeeField = wordsToBytes(field, false).subarray(0, 33);
        break;
      case TAG.d:
        try {
          description = new TextDecoder('utf-8', { fatal: true }).decode(wordsToBytes(field, false));
        } catch {
          throw invalid('description is not UTF-8');
        }
        break;
      case TAG.x:
        if (len > 7) throw invalid('expiry field too long');
        expirySec = wordsToInt(field);
        break;
      case TAG.c:
        if (len > 7) throw invalid('min_final_cltv_expiry field too long');
        minFinalCltvExpiry = wordsToInt(field);
        break;
      case TAG.features: {
        let f = 0n;
        for (const w of field) f = (f << 5n) | BigInt(w);
        features = f;
        for (let bit = 0; f >> BigInt(bit) !== 0n; bit += 2) {
          if (((f >> BigInt(bit)) & 1n) === 1n && !KNOWN_FEATURE_BITS.has(bit)) throw invalid(`unknown required feature bit ${bit}`);
        }
        break;
      }
      default:
        break; // f (fallback), r (route hints), m (metadata) and unknown fields: not needed here
    }
  }
  if (paymentHashCount !== 1 || paymentHash === undefined) throw invalid('invoice must carry exactly one payment hash');
  if (description === undefined && descriptionHash === undefined) throw invalid('invoice carries neither d nor h');

  const hrpBytes = new TextEncoder().encode(hrp);
  const body = wordsToBytes(dataWords, true);
  const preimage = new Uint8Array(hrpBytes.length + body.length);
  preimage.set(hrpBytes, 0);
  preimage.set(body, hrpBytes.length);
  const msgHash = sha256(preimage);

  let payee: Uint8Array;
  if (payeeField) {
    if (!verifyEcdsa(msgHash, sig64, payeeField)) throw invalid('signature does not verify under the n field');
    payee = payeeField;
  } else {
    // recovery yields the one key this (r, s, recid) verifies under, so no separate verify is needed
    const recovered = recoverEcdsa(msgHash, sig64, recovery);
    if (!recovered) throw invalid('signature does not recover a public key');
    payee = recovered;
  }
  const payeePubkey = hex(payee);
  if (opts.expectedPayee !== undefined && payeePubkey !== opts.expectedPayee.toLowerCase()) {
    throw invalid("invoice was not issued by this node's Lightning node");
  }

  const out: DecodedInvoice = {
    invoice: s,
    hrp,
    network,
    timestampSec,
    expirySec,
    expiresAtMs: (timestampSec + expirySec) * 1000,
    paymentHash,
    minFinalCltvExpiry,
    features,
    payeePubkey,
    payeeFromField: payeeField !== undefined,
    ...(amountMsat !== undefined ? { amountMsat, amountSats: Number(amountMsat / 1000n) } : {}),
    ...(paymentSecret !== undefined ? { paymentSecret } : {}),
    ...(description !== undefined ? { description } : {}),
    ...(descriptionHash !== undefined ? { descriptionHash } : {}),
  };
  return out;
}
