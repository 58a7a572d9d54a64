import { readFileSync } from 'node:fs';
import { checkEnvelopeSignature, type Envelope } from '../../crypto/envelope.js';
import { toNpub } from '../../crypto/keys.js';
import { EXIT_FAIL, EXIT_OK, parseFlags, UsageError, writeJson, type CliCommand } from '../command.js';

interface Found {
  path: string;
  keyId: string;
  ok: boolean;
  reason?: string;
}

function isEnvelope(v: unknown): v is Envelope {
  return !!v && typeof v === 'object' && ['payload', 'nonce', 'ts', 'keyId', 'sig'].every((k) => k in (v as object));
}

/** Finds every envelope in a document: a bare envelope, {response, metering}, a 402 body, or a receipt list. */
function collect(v: unknown, at: string, out: Array<{ path: string; env: Envelope }>): void {
  if (isEnvelope(v)) {
    out.push({ path: at, env: v });
    const receipts = (v.payload as { paymentReceipts?: unknown })?.paymentReceipts;
    if (Array.isArray(receipts)) receipts.forEach((r, i) => collect(r, `${at}.payload.paymentReceipts[${i}]`, out));
    return;
  }
  if (Array.isArray(v)) v.forEach((x, i) => collect(x, `${at}[${i}]`, out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) collect(x, at ? `${at}.${k}` : k, out);
}

export const verifyCommand: CliCommand = {
  name: 'verify',
  summary: 'verify the signatures of the envelopes in a JSON file',
  usage: `usage: verify <file> [--key-id <npub|hex>] [--json]

Checks every signed envelope found in the file (a bare envelope, an /infer reply {response, metering},
a 402 body with its payment request, a receipt, or an SSE final frame's JSON). Exit 0 when all verify
(and, with --key-id, were all signed by that key), 1 otherwise.`,
  async run(args, io) {
    const { values, positionals } = parseFlags(args, { json: { type: 'boolean' }, 'key-id': { type: 'string' } }, true);
    if (positionals.length !== 1) throw new UsageError('expected exactly one file');
    const want = values['key-id'] !== undefined ? toNpub(values['key-id']) : undefined;
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(positionals[0]!, 'utf8'));
    } catch (err) {
      io.stderr(`verify: ${positionals[0]}: ${(err as Error).message}\n`);
      return EXIT_FAIL;
    }
    const envs: Array<{ path: string; env: Envelope }> = [];
    collect(doc, '', envs);
    const found: Found[] = envs.map(({ path, env }) => {
      const failure = checkEnvelopeSignature(env);
      const wrongSigner = want !== undefined && path.indexOf('paymentReceipts') < 0 && env.keyId !== want;
      const f: Found = { path: path || '(root)', keyId: String(env.keyId), ok: failure === null && !wrongSigner };
      if (failure) f.reason = failure;
      else if (wrongSigner) f.reason = 'signed by another key';
      return f;
    });
    const ok = found.length > 0 && found.every((f) => f.ok);
    if (values.json) writeJson(io, { ok, envelopes: found });
    else {
      if (found.length === 0) io.stdout('no signed envelope found\n');
      for (const f of found) io.stdout(`${f.ok ? 'ok  ' : 'FAIL'} ${f.path} ${f.keyId}${f.reason ? ` (${f.reason})` : ''}\n`);
    }
    return ok ? EXIT_OK : EXIT_FAIL;
  },
};
