/**
 * `fedai infer`: builds and signs an InferenceRequest and sends it — as a client to a router
 * (--router), or in development with the dev router key straight to a node (--node). The reply's
 * response and metering envelopes are verified against the node's key before anything is printed as
 * a success. `--request-id` and `--receipts` make the pay-then-retry flow work (upstream's CLI minted
 * a fresh request id on every call, so a receipt could never match: defect 14).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkEnvelopeSignature, signEnvelope, type Envelope } from '../../crypto/envelope.js';
import { parseIdentity, toNpub, type Identity } from '../../crypto/keys.js';
import { devKeyPaths } from '../../config/identity.js';
import type { InferenceRequest, InferenceResponse, MeteringRecord, PaymentReceipt } from '../../protocol/wire-types.js';
import { EXIT_FAIL, EXIT_OK, parseFlags, UsageError, writeJson, type CliCommand, type CliIO } from '../command.js';

export const EXIT_PAYMENT_REQUIRED = 3;

const USAGE = `usage: infer (--node <url> | --router <url>) (--prompt <text> | --prompt-file <file|->) [options]

  --node <url>             send straight to a node's /infer (development: signed with the dev router key)
  --router <url>           send to a router's /infer as a client (signed with --private-key)
  --private-key <key>      nsec or 64 hex; default: <data dir>/dev/router.nsec made by 'npm start'
  --data-dir <dir>         where the dev keys live (default: NODE_DATA_DIR or ./.fedai)
  --model <id>             model id (default: auto)
  --max-tokens <n>         (default 64)
  --temperature <x>, --top-p <x>
  --request-id <id>        reuse a request id (pay-then-retry); default: a new UUID
  --receipts <a.json,...>  signed PaymentReceipt envelopes to attach (files made by 'fedai receipt')
  --stream                 use /infer/stream and print tokens as they arrive
  --node-key-id <npub>     the node key the reply must be signed with (default with --node: the node's /status npub)
  --payment-request-out <f> on 402, write the payment request body there (default: payment-request.json)
  --out <file>             write the full reply JSON there
  --timeout-ms <n>         (default 120000)
  --json                   print the full reply as JSON

Exit codes: 0 answered and verified; 1 error reply or verification failure; 2 usage; 3 payment required.`;

function loadReceipts(list: string | undefined, cwd: string): Envelope<PaymentReceipt>[] {
  if (!list) return [];
  const out: Envelope<PaymentReceipt>[] = [];
  for (const f of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const v = JSON.parse(readFileSync(path.resolve(cwd, f), 'utf8')) as unknown;
    for (const e of Array.isArray(v) ? v : [v]) out.push(e as Envelope<PaymentReceipt>);
  }
  return out;
}

function signerKey(values: { 'private-key'?: string; 'data-dir'?: string }, io: CliIO, mode: 'node' | 'router'): Identity {
  if (values['private-key']) return parseIdentity(values['private-key']);
  if (mode === 'router') throw new UsageError('--router needs --private-key (your client key)');
  const dataDir = path.resolve(io.cwd, values['data-dir'] ?? io.env.NODE_DATA_DIR ?? '.fedai');
  const file = devKeyPaths(dataDir).router;
  try {
    return parseIdentity(readFileSync(file, 'utf8'));
  } catch {
    throw new UsageError(`no --private-key given and no dev router key at ${file} (run 'npm start' once, or pass --private-key)`);
  }
}

interface Reply {
  response: Envelope<InferenceResponse>;
  metering: Envelope<MeteringRecord>;
}

function verifyReply(reply: Reply, requestId: string, nodeKey: string | undefined): string[] {
  const problems: string[] = [];
  for (const [name, env] of [['response', reply.response], ['metering', reply.metering]] as const) {
    if (!env || typeof env !== 'object') {
      problems.push(`${name} envelope missing`);
      continue;
    }
    const f = checkEnvelopeSignature(env as Envelope);
    if (f) problems.push(`${name}: ${f}`);
    if (nodeKey && env.keyId !== nodeKey) problems.push(`${name}: signed by ${env.keyId}, expected ${nodeKey}`);
    if ((env.payload as { requestId?: string })?.requestId !== requestId) problems.push(`${name}: requestId does not match`);
  }
  if (reply.response?.keyId !== reply.metering?.keyId) problems.push('response and metering signed by different keys');
  return problems;
}

async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      yield { event, data: data.join('\n') };
    }
  }
}

export const inferCommand: CliCommand = {
  name: 'infer',
  summary: 'send a signed inference request and verify the signed reply',
  usage: USAGE,
  async run(args, io) {
    const { values } = parseFlags(args, {
      node: { type: 'string' },
      router: { type: 'string' },
      prompt: { type: 'string' },
      'prompt-file': { type: 'string' },
      'private-key': { type: 'string' },
      'data-dir': { type: 'string' },
      model: { type: 'string', default: 'auto' },
      'max-tokens': { type: 'string', default: '64' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      'request-id': { type: 'string' },
      receipts: { type: 'string' },
      stream: { type: 'boolean' },
      'node-key-id': { type: 'string' },
      'payment-request-out': { type: 'string' },
      out: { type: 'string' },
      'timeout-ms': { type: 'string', default: '120000' },
      json: { type: 'boolean' },
    });
    if (!!values.node === !!values.router) throw new UsageError('give exactly one of --node or --router');
    const mode = values.node ? 'node' : 'router';
    const base = (values.node ?? values.router)!.replace(/\/+$/, '');
    let prompt = values.prompt;
    if (values['prompt-file'] !== undefined) {
      prompt = values['prompt-file'] === '-' ? readFileSync(0, 'utf8') : readFileSync(path.resolve(io.cwd, values['prompt-file']), 'utf8');
    }
    if (prompt === undefined) throw new UsageError('give --prompt or --prompt-file');
    const maxTokens = Number(values['max-tokens']);
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) throw new UsageError('--max-tokens must be an integer ≥ 1');
    const timeoutMs = Number(values['timeout-ms']);
    const signer = signerKey(values, io, mode);
    const requestId = values['request-id'] ?? randomUUID();
    const payload: InferenceRequest = { requestId, modelId: values.model!, prompt, maxTokens };
    if (values.temperature !== undefined) payload.temperature = Number(values.temperature);
    if (values['top-p'] !== undefined) payload.topP = Number(values['top-p']);
    const receipts = loadReceipts(values.receipts, io.cwd);
    if (receipts.length > 0) payload.paymentReceipts = receipts;

    let nodeKey = values['node-key-id'] !== undefined ? toNpub(values['node-key-id']) : undefined;
    const signal = AbortSignal.timeout(timeoutMs);
    if (!nodeKey && mode === 'node') {
      try {
        const st = (await (await fetch(`${base}/status`, { signal })).json()) as { npub?: string };
        if (typeof st.npub === 'string') nodeKey = st.npub;
      } catch {
        /* verified against the reply's own key below, with a warning */
      }
    }
    const envelope = signEnvelope(payload, signer);
    const url = `${base}/infer${values.stream ? '/stream' : ''}`;
    let res: Response;
    try {
      res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(envelope), signal });
    } catch (err) {
      io.stderr(`infer: ${url}: ${(err as Error).message}\n`);
      return EXIT_FAIL;
    }
    const contentType = res.headers.get('content-type') ?? '';
    if (!res.ok || !contentType.startsWith('text/event-stream')) {
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      if (res.status === 402) {
        const out = path.resolve(io.cwd, values['payment-request-out'] ?? 'payment-request.json');
        writeFileSync(out, JSON.stringify(body, null, 2) + '\n');
        io.stderr(
          `infer: 402 payment required for request ${requestId}; payment request written to ${out}\n` +
            `  pay it, then: fedai receipt --payment-request ${out} --private-key <your key> --out receipt.json\n` +
            `  and retry:    fedai infer ... --request-id ${requestId} --receipts receipt.json\n`,
        );
        if (values.json) writeJson(io, { status: 402, requestId, body });
        return EXIT_PAYMENT_REQUIRED;
      }
      if (!res.ok) {
        if (values.json) writeJson(io, { status: res.status, body });
        else io.stderr(`infer: ${res.status} ${JSON.stringify(body)}\n`);
        return EXIT_FAIL;
      }
      const reply = body as Reply;
      return finish(reply, '', false);
    }

    // Streaming
    let streamed = '';
    for await (const ev of sseEvents(res.body!)) {
      const data = JSON.parse(ev.data) as Record<string, unknown>;
      if (ev.event === 'chunk') {
        streamed += String(data.delta ?? '');
        if (!values.json) io.stdout(String(data.delta ?? ''));
      } else if (ev.event === 'final') {
        if (!values.json) io.stdout('\n');
        return finish(data as unknown as Reply, streamed, true);
      } else if (ev.event === 'error') {
        if (!values.json) io.stdout('\n');
        if (values.json) writeJson(io, { status: 200, error: data });
        else io.stderr(`infer: stream error ${JSON.stringify(data)}\n`);
        return EXIT_FAIL;
      }
    }
    io.stderr('infer: stream ended without a final frame\n');
    return EXIT_FAIL;

    function finish(reply: Reply, streamedText: string, streamedMode: boolean): number {
      const problems = verifyReply(reply, requestId, nodeKey);
      if (streamedMode && reply.response?.payload && streamedText !== reply.response.payload.output) {
        problems.push('streamed chunks do not add up to the signed output');
      }
      if (values.out) writeFileSync(path.resolve(io.cwd, values.out), JSON.stringify(reply, null, 2) + '\n');
      if (values.json) writeJson(io, { status: 200, verified: problems.length === 0, problems, ...reply });
      else {
        if (!streamedMode) io.stdout(reply.response.payload.output + '\n');
        const m = reply.metering.payload;
        if (problems.length === 0) {
          io.stderr(
            `verified: response and metering signed by ${reply.response.keyId}${nodeKey ? '' : ' (node key not pinned: pass --node-key-id)'}\n` +
              `request ${requestId}: ${m.inputTokens} tokens in, ${m.outputTokens} out, ${m.wallTimeMs} ms\n`,
          );
        } else io.stderr(`verification FAILED: ${problems.join('; ')}\n`);
      }
      return problems.length === 0 ? EXIT_OK : EXIT_FAIL;
    }
  },
};
