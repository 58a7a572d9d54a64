/**
 * The /infer and /infer/stream pipeline, independent of HTTP framing. Checks run cheapest first so
 * junk costs little CPU (docs/http-api.md has the table):
 *
 *   body size → JSON → envelope schema → keyId is an npub → router trust (block list, allowed set)
 *   → signature → rate limit → replay window/nonce (checked, not consumed) → prompt bytes / maxTokens
 *   → model and context window → payment (when required) → capacity → [receipt spent, nonce consumed]
 *   → runner.
 *
 * Nothing is consumed by a request that is refused: the nonce and the payment receipt are committed
 * only once the request holds a capacity slot (upstream defect 9). Every request that reached a
 * runner — success, error, cancel or timeout — leaves a node-signed MeteringRecord in the durable
 * spool before the reply is sent (defect 11); a result whose metering cannot be persisted is not sent.
 */
import { hash } from 'node:crypto';
import type { Logger } from 'pino';
import { FedaiError, toFedaiError, type ErrorCode } from '../../errors.js';
import {
  checkEnvelopeSignature,
  checkEnvelopeSignatureOn,
  isNpubKeyId,
  publicKeyForKeyId,
  signEnvelope,
  signEnvelopeOn,
  type Envelope,
  type SchnorrWorkers,
} from '../../crypto/envelope.js';
import type { Config } from '../../config/load-config.js';
import type { ResolvedIdentity } from '../../config/identity.js';
import { validateEnvelopeOf } from '../../protocol/wire-schemas.js';
import type { InferenceRequest, InferenceResponse, MeteringRecord } from '../../protocol/wire-types.js';
import type { InferResult, ModelInfo, RunnerInferRequest } from '../../protocol/runner-protocol.js';
import { estimateTokens } from '../../../runner-host/adapter.js';
import { parseJsonBody } from '../read-body.js';
import { Capacity } from './capacity.js';
import { RateLimiter } from './rate-limiter.js';
import {
  NO_TRACE,
  type InferMetricsPort,
  type PaymentPort,
  type PaymentTicketPort,
  type ReplayPort,
  type RunnerPort,
  type SpoolPort,
  type TracePort,
} from './ports.js';

export interface InferServiceDeps {
  config: Config;
  identity: ResolvedIdentity;
  nodeId: string;
  replay: ReplayPort;
  runner: RunnerPort;
  payments: PaymentPort | null;
  spool: SpoolPort;
  metrics: InferMetricsPort;
  capacity: Capacity;
  logger: Logger;
  /** Worker threads for Schnorr; absent = on the event loop. */
  crypto?: SchnorrWorkers;
  now?: () => number;
}

/** A request that passed every check and holds a capacity slot. */
export interface AdmittedRequest {
  readonly envelope: Envelope<InferenceRequest>;
  readonly request: InferenceRequest;
  readonly model: ModelInfo;
  readonly payment?: PaymentTicketPort;
  /** The consumed nonce and the spent receipt are on disk (awaited before anything is metered or answered). */
  readonly consumedDurable: Promise<unknown>;
  /** Releases the capacity slot; idempotent. */
  readonly release: () => void;
}

export interface InferOutcome {
  response: Envelope<InferenceResponse>;
  metering: Envelope<MeteringRecord>;
}

export interface ExecuteOptions {
  stream?: boolean;
  onChunk?: (chunk: { requestId: string; modelId: string; delta: string; index: number }) => void;
  signal?: AbortSignal;
  trace?: TracePort;
}

/** Errors raised before the runner received the request: such requests leave no metering record. */
const NOT_REACHED: ReadonlySet<ErrorCode> = new Set(['runner-unavailable', 'capacity-exhausted', 'node-draining', 'sandbox-layer-missing', 'sandbox-runner-not-allowed']);
/** The estimate is exact only when the runner tokenizes; refine the chars/4 check above this share. */
const EXACT_CONTEXT_CHECK_RATIO = 0.75;

export class InferService {
  private readonly rate: RateLimiter;
  private readonly now: () => number;

  constructor(private readonly deps: InferServiceDeps) {
    this.rate = new RateLimiter(deps.config.NODE_RATE_LIMIT_MAX, deps.config.NODE_RATE_LIMIT_WINDOW_MS);
    this.now = deps.now ?? Date.now;
  }

  /** All checks, in order; on success the request holds a capacity slot that execute() releases. */
  async admit(rawBody: Buffer, trace: TracePort = NO_TRACE): Promise<AdmittedRequest> {
    const { config, identity } = this.deps;
    const body = parseJsonBody(rawBody);
    const v = validateEnvelopeOf('inference-request', body);
    if (!v.ok) throw new FedaiError('invalid-envelope', { details: v.details });
    const envelope = v.value as Envelope<InferenceRequest>;
    const request = envelope.payload;
    trace.annotate({ 'fedai.request_id': request.requestId, 'gen_ai.request.model': request.modelId, 'gen_ai.request.max_tokens': request.maxTokens });

    await trace.child('fedai.verify', async () => {
      if (!isValidNpub(envelope.keyId)) throw new FedaiError('invalid-key-id');
      if (identity.blockedRouters.has(envelope.keyId)) throw new FedaiError('router-blocked');
      if (!identity.trustedRouters.has(envelope.keyId)) throw new FedaiError('router-not-allowed');
      const failure = this.deps.crypto ? await checkEnvelopeSignatureOn(this.deps.crypto, envelope) : checkEnvelopeSignature(envelope);
      if (failure !== null) throw new FedaiError('invalid-signature');
    });
    const wait = this.rate.hit(envelope.keyId);
    if (wait > 0) throw new FedaiError('rate-limited', { retryAfterS: wait });
    const replay = this.deps.replay.check(envelope.keyId, envelope.nonce, envelope.ts);
    if (replay) throw new FedaiError(replay);

    if (Buffer.byteLength(request.prompt, 'utf8') > config.NODE_MAX_PROMPT_BYTES) {
      throw new FedaiError('prompt-too-large', { details: [`limit ${config.NODE_MAX_PROMPT_BYTES} bytes`] });
    }
    if (request.maxTokens > config.NODE_MAX_TOKENS) {
      throw new FedaiError('max-tokens-exceeded', { details: [`limit ${config.NODE_MAX_TOKENS}`] });
    }
    const model = this.resolveModel(request.modelId);
    if (request.maxTokens > model.maxTokens) {
      throw new FedaiError('max-tokens-exceeded', { details: [`model ${model.id} allows ${model.maxTokens}`] });
    }
    const estimate = await this.checkContext(request, model);

    let payment: PaymentTicketPort | undefined;
    if (this.deps.payments?.required) {
      payment = await trace.child('fedai.payment', () => this.deps.payments!.check(request, estimate ? { estimate } : {}));
    }

    const release = this.deps.capacity.acquire();
    try {
      // Receipt first: a request that loses a race for a receipt keeps its nonce usable.
      if (payment) await payment.commit();
      const committed = this.deps.replay.commit(envelope.keyId, envelope.nonce, envelope.ts);
      if (committed) throw new FedaiError(committed);
    } catch (err) {
      release();
      throw err;
    }
    // The nonce and the receipt spend reach the disk while the runner works; meter() waits for them.
    const consumedDurable = payment ? Promise.all([this.deps.replay.durable(), payment.durable()]) : this.deps.replay.durable();
    const admitted: AdmittedRequest = { envelope, request, model, release, consumedDurable, ...(payment ? { payment } : {}) };
    return admitted;
  }

  private resolveModel(modelId: string): ModelInfo {
    const models = this.deps.runner.listModels();
    if (models.length === 0) throw new FedaiError('runner-unavailable', { retryAfterS: 5 });
    if (modelId === 'auto') return models[0]!;
    const override = this.deps.config.NODE_MODEL_ID;
    const m = models.find((x) => x.id === modelId) ?? (override !== undefined && modelId === override ? models[0] : undefined);
    if (!m) throw new FedaiError('model-not-found', { details: [`serving ${models.map((x) => override ?? x.id).join(', ')}`] });
    return m;
  }

  /** chars/4 first (cheap); near the limit, the runner's exact token count decides. */
  private async checkContext(request: InferenceRequest, model: ModelInfo): Promise<{ inputTokens: number; exact: boolean } | undefined> {
    const rough = estimateTokens(request.prompt);
    const fits = (n: number) => n + request.maxTokens <= model.contextWindow;
    const caps = this.deps.runner.capabilities();
    // The exact count matters near the context limit, and for pricing a 402 (a request that carries
    // receipts is priced by the router formula, which uses chars/4: no runner round trip for it).
    const quoting = this.deps.payments?.required === true && !(request.paymentReceipts && request.paymentReceipts.length > 0);
    const needExact = caps?.estimate === true && (rough + request.maxTokens >= model.contextWindow * EXACT_CONTEXT_CHECK_RATIO || quoting);
    if (!needExact) {
      if (!fits(rough)) throw contextError(rough, request.maxTokens, model);
      return { inputTokens: rough, exact: false };
    }
    let est;
    try {
      est = await this.deps.runner.estimate(toRunnerRequest(request, model));
    } catch (err) {
      const e = toFedaiError(err);
      if (e.code === 'context-window-exceeded') throw e;
      // The estimate is an optimisation: fall back to the rough count rather than fail the request.
      this.deps.logger.debug({ code: e.code }, 'runner estimate failed; using chars/4');
      if (!fits(rough)) throw contextError(rough, request.maxTokens, model);
      return { inputTokens: rough, exact: false };
    }
    if (!fits(est.inputTokens)) throw contextError(est.inputTokens, request.maxTokens, model);
    return { inputTokens: est.inputTokens, exact: est.exact };
  }

  /** Runs an admitted request on the runner, signs, meters durably, releases the slot. */
  async execute(admitted: AdmittedRequest, opts: ExecuteOptions = {}): Promise<InferOutcome> {
    const { request, model } = admitted;
    const trace = opts.trace ?? NO_TRACE;
    const started = this.now();
    const t0 = process.hrtime.bigint();
    let first = true;
    let streamed = '';
    let index = 0;
    const onChunk = opts.stream
      ? (c: { index: number; delta: string }) => {
          if (first) {
            first = false;
            this.deps.metrics.ttft(Number(process.hrtime.bigint() - t0) / 1e9);
          }
          streamed += c.delta;
          opts.onChunk?.({ requestId: request.requestId, modelId: this.advertisedModelId(model), delta: c.delta, index: index++ });
        }
      : undefined;
    try {
      let result: InferResult;
      try {
        result = await trace.child('fedai.runner', () => {
          const traceparent = trace.traceparent();
          return this.deps.runner.infer(toRunnerRequest(request, model), {
            stream: opts.stream === true,
            ...(onChunk ? { onChunk } : {}),
            ...(opts.signal ? { signal: opts.signal } : {}),
            ...(traceparent ? { traceparent } : {}),
          });
        });
      } catch (err) {
        const e = toFedaiError(err);
        if (NOT_REACHED.has(e.code)) throw e;
        const outcome = e.code === 'request-cancelled' ? 'cancelled' : e.code === 'runner-timeout' ? 'timeout' : 'error';
        const usage = e.usage ?? { inputTokens: estimateTokens(request.prompt), outputTokens: estimateTokens(streamed) };
        await this.meter(admitted, { output: streamed, usage, wallTimeMs: this.now() - started, outcome });
        // Details written by a runner or its backend are untrusted text that may quote the prompt:
        // the caller gets the catalogued code only.
        throw new FedaiError(e.code, e.retryAfterS !== undefined ? { retryAfterS: e.retryAfterS } : {});
      }
      if (opts.stream && first && result.output.length > 0) {
        // A runner without streaming: send its whole output as one chunk, as upstream does.
        onChunk!({ index: 0, delta: result.output });
      }
      const wallTimeMs = this.now() - started;
      const modelId = this.advertisedModelId(model);
      // Keys in canonical (sorted) order: the signature's canonical JSON is then one JSON.stringify.
      const responsePayload: InferenceResponse = {
        latencyMs: wallTimeMs,
        modelId,
        output: result.output,
        requestId: request.requestId,
        usage: { inputTokens: result.usage.inputTokens, outputTokens: result.usage.outputTokens },
      };
      trace.annotate({
        'gen_ai.response.model': modelId,
        'gen_ai.usage.input_tokens': result.usage.inputTokens,
        'gen_ai.usage.output_tokens': result.usage.outputTokens,
      });
      const { metering, response } = await this.meter(admitted, { output: result.output, usage: result.usage, wallTimeMs, outcome: 'ok' }, responsePayload);
      this.deps.metrics.tokens(modelId, result.usage.inputTokens, result.usage.outputTokens);
      return { response: response!, metering };
    } finally {
      admitted.release();
    }
  }

  private advertisedModelId(model: ModelInfo): string {
    return this.deps.config.NODE_MODEL_ID ?? model.id;
  }

  private sign<T>(payload: T): Promise<Envelope<T>> {
    return this.deps.crypto ? signEnvelopeOn(this.deps.crypto, payload, this.deps.identity.node) : Promise.resolve(signEnvelope(payload, this.deps.identity.node));
  }

  /** Signs the metering record (and the response, in parallel, when given) and spools the record durably. */
  private async meter(
    admitted: AdmittedRequest,
    m: { output: string; usage: { inputTokens: number; outputTokens: number }; wallTimeMs: number; outcome: 'ok' | 'error' | 'cancelled' | 'timeout' },
    responsePayload?: InferenceResponse,
  ): Promise<{ metering: Envelope<MeteringRecord>; response?: Envelope<InferenceResponse> }> {
    const { request, model } = admitted;
    // Keys in canonical (sorted) order, optional ones in their place: canonical JSON is one JSON.stringify.
    const record: MeteringRecord = {
      bytesIn: Buffer.byteLength(request.prompt, 'utf8'),
      bytesOut: Buffer.byteLength(m.output, 'utf8'),
      inputTokens: m.usage.inputTokens,
      modelId: this.advertisedModelId(model),
      nodeId: this.deps.nodeId,
      ...(m.outcome !== 'ok' ? { outcome: m.outcome } : {}),
      outputTokens: m.usage.outputTokens,
      ...(admitted.payment ? { paymentRef: admitted.payment.reference } : {}),
      promptHash: hash('sha256', request.prompt, 'hex'),
      requestId: request.requestId,
      ts: this.now(),
      wallTimeMs: m.wallTimeMs,
    };
    // The response is signed while the metering record is being made durable (fsync runs off-thread).
    const signed = this.sign(record);
    signed.catch(() => undefined); // awaited below; a rejection while waiting is not unhandled
    // A crash after this point must not let the request run again: its nonce (and receipt) are on disk
    // before its metering record is, and so before any answer (usually long done: written during the run).
    await admitted.consumedDurable;
    const envelope = await signed;
    const appended = this.deps.spool.append(envelope);
    appended.catch(() => undefined);
    const responseSigned = responsePayload ? this.sign(responsePayload) : undefined;
    responseSigned?.catch(() => undefined);
    try {
      await appended;
    } catch (err) {
      this.deps.logger.error({ err, requestId: request.requestId }, 'metering spool append failed');
      throw new FedaiError('metering-write-failed', { cause: err });
    }
    const response = await responseSigned;
    this.deps.metrics.metering(m.outcome);
    return response ? { metering: envelope, response } : { metering: envelope };
  }
}

/** npub form and a real curve point, through the envelope module's key cache (parsed once per signer). */
function isValidNpub(keyId: string): boolean {
  if (!isNpubKeyId(keyId)) return false;
  try {
    publicKeyForKeyId(keyId);
    return true;
  } catch {
    return false;
  }
}

function contextError(inputTokens: number, maxTokens: number, model: ModelInfo): FedaiError {
  return new FedaiError('context-window-exceeded', {
    details: [`input ${inputTokens} + maxTokens ${maxTokens} > context window ${model.contextWindow} of ${model.id}`],
  });
}

/** Only the inference fields reach a runner: never receipts, metadata or keys (upstream defect 16). */
export function toRunnerRequest(request: InferenceRequest, model: ModelInfo): RunnerInferRequest {
  const r: RunnerInferRequest = { requestId: request.requestId, modelId: model.id, prompt: request.prompt, maxTokens: request.maxTokens };
  if (request.temperature !== undefined) r.temperature = request.temperature;
  if (request.topP !== undefined) r.topP = request.topP;
  if (request.jobType !== undefined) r.jobType = request.jobType;
  return r;
}
