/**
 * The runner conformance kit: starts a runner command (any language), speaks the runner protocol to
 * it (docs/runner-protocol.md) and reports one CheckResult per rule. It also tees the runner's raw
 * stdout through a FrameChecker, so a runner that prints anything but frames fails `no-stdout-noise`.
 *
 * Every process it starts is killed before checkRunner() returns, whatever happened.
 * Used by `fedai-node check-runner` and by the tests of the built-in and example runners.
 */
import { CancellationTokenSource, ResponseError } from 'vscode-jsonrpc/node';
import {
  RUNNER_PROTOCOL_VERSION,
  RpcCode,
  RunnerMethod,
  protocolMajor,
  type InferChunkParams,
  type InferParams,
  type InferResult,
  type InitializeParams,
  type InitializeResult,
  type ModelInfo,
} from '../../protocol/runner-protocol.js';
import { runnerValidators, type RunnerSchemaName } from '../../../runner-host/host.js';
import { RunnerClient, RunnerClientError } from './runner-client.js';

export interface CheckResult {
  name: string;
  ok: boolean;
  detail?: string;
  ms: number;
}

export interface CheckOptions {
  /** The runner's whole environment (PATH is added); nothing else leaks from ours. */
  env?: Record<string, string>;
  /** Per-request and per-exit timeout (default 10000 ms). */
  timeoutMs?: number;
  cwd?: string;
}

/** The names of every check, in the order checkRunner() runs them. */
export const CHECK_NAMES = [
  'methods-before-initialize-refused',
  'handshake',
  'incompatible-major-refused',
  'list-models',
  'infer',
  'streaming',
  'cancellation',
  'invalid-params',
  'unknown-method',
  'estimate',
  'health',
  'shutdown-exit',
  'exit-on-stdin-close',
  'notifications',
  'no-stdout-noise',
] as const;

/** Tokens left free in the context window for the checks' short prompts (and tokenizer slack). */
const CONTEXT_RESERVE = 64;

class CheckFailure extends Error {}

function fail(detail: string): never {
  throw new CheckFailure(detail);
}

function isInt(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0;
}

function initParams(protocolVersion = RUNNER_PROTOCOL_VERSION): InitializeParams {
  return {
    protocolVersion,
    supervisor: { name: 'fedai-conformance', version: '1.0.0' },
    runnerId: 'conformance-0',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  };
}

function schemaCheck(name: RunnerSchemaName, value: unknown, what: string): void {
  const v = runnerValidators().get(name)!;
  if (!v(value)) fail(`${what} does not match schemas/runner/${name}.json: ${v.lastErrors().slice(0, 3).join('; ')}`);
}

function expectRpcError(err: unknown, what: string): ResponseError<unknown> {
  if (err instanceof CheckFailure || err instanceof RunnerClientError) throw err;
  if (!(err instanceof ResponseError)) fail(`${what}: expected a JSON-RPC error, got ${err instanceof Error ? err.name : typeof err}`);
  return err;
}

function dataCode(err: ResponseError<unknown>): string | undefined {
  const d = err.data as { code?: unknown } | undefined;
  return d && typeof d === 'object' && typeof d.code === 'string' ? d.code : undefined;
}

function describeError(err: unknown): string {
  if (err instanceof ResponseError) return `error ${err.code}${dataCode(err) ? ` (${dataCode(err)})` : ''}`;
  if (err instanceof Error) return err.message;
  return String(err);
}

function request(model: ModelInfo, id: string, maxTokens: number): InferParams['request'] {
  return {
    requestId: id,
    modelId: model.id,
    prompt: 'Conformance check: write a short sentence about rivers.',
    maxTokens,
    temperature: 0,
  };
}

/**
 * Runs every conformance check against `command` (absolute argv). Never throws for a misbehaving
 * runner: every problem is a failed CheckResult.
 */
export async function checkRunner(
  command: string[],
  opts: CheckOptions = {},
): Promise<CheckResult[]> {
  if (command.length === 0) throw new Error('checkRunner: empty command');
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const results: CheckResult[] = [];
  const sessions: RunnerClient[] = [];
  const spawn = (): RunnerClient => {
    const s = new RunnerClient(command, opts);
    sessions.push(s);
    return s;
  };

  let init: InitializeResult | undefined;
  let model: ModelInfo | undefined;

  const run = async (name: string, fn: () => Promise<string | void>): Promise<boolean> => {
    const t0 = performance.now();
    let ok = true;
    let detail: string | undefined;
    try {
      const d = await fn();
      if (typeof d === 'string') detail = d;
    } catch (err) {
      ok = false;
      detail = err instanceof CheckFailure || err instanceof RunnerClientError ? err.message : describeError(err);
    }
    results.push({ name, ok, ...(detail !== undefined ? { detail } : {}), ms: Math.round(performance.now() - t0) });
    return ok;
  };
  const skipFail = (name: string, why: string): void => {
    results.push({ name, ok: false, detail: why, ms: 0 });
  };

  try {
    const main = spawn();

    await run('methods-before-initialize-refused', async () => {
      try {
        await main.request(RunnerMethod.listModels, undefined, timeoutMs);
      } catch (err) {
        const e = expectRpcError(err, 'listModels before initialize');
        return `refused with ${describeError(e)}`;
      }
      fail('listModels before initialize was answered with a result');
    });

    const handshakeOk = await run('handshake', async () => {
      const r = await main.request<InitializeResult>(RunnerMethod.initialize, initParams(), timeoutMs);
      schemaCheck('initialize-result', r, 'initialize result');
      if (protocolMajor(r.protocolVersion) !== protocolMajor(RUNNER_PROTOCOL_VERSION)) {
        fail(`runner answered protocolVersion ${r.protocolVersion}, expected major ${protocolMajor(RUNNER_PROTOCOL_VERSION)}`);
      }
      if (r.models.length === 0) fail('initialize result lists no models');
      init = r;
      model = r.models[0];
      return `${r.runner.name} ${r.runner.version}, ${r.models.length} model(s), maxParallel ${r.limits.maxParallel}`;
    });

    await run('incompatible-major-refused', async () => {
      const other = spawn();
      try {
        const bad = `${protocolMajor(RUNNER_PROTOCOL_VERSION) + 98}.0`;
        try {
          await other.request(RunnerMethod.initialize, initParams(bad), timeoutMs);
        } catch (err) {
          const e = expectRpcError(err, `initialize ${bad}`);
          if (dataCode(e) !== 'protocol-version-mismatch') {
            fail(`initialize ${bad} refused with ${describeError(e)}, expected data.code "protocol-version-mismatch"`);
          }
          return;
        }
        fail(`initialize with protocolVersion ${bad} was accepted`);
      } finally {
        await other.kill();
      }
    });

    if (!handshakeOk || !init || !model) {
      for (const n of CHECK_NAMES.slice(3, -4)) skipFail(n, 'not run: the handshake failed');
    } else {
      const m = model;
      const caps = init.capabilities;

      await run('list-models', async () => {
        const r = await main.request<{ models: ModelInfo[] }>(RunnerMethod.listModels, undefined, timeoutMs);
        schemaCheck('list-models-result', r, 'listModels result');
        if (!r.models.some((x) => x.id === m.id)) fail(`listModels does not contain ${m.id} from initialize`);
      });

      await run('infer', async () => {
        const req = request(m, 'conf-infer-1', Math.min(16, m.maxTokens));
        const r = await main.request<InferResult>(RunnerMethod.infer, { request: req, traceparent: initParams().traceparent }, timeoutMs);
        schemaCheck('infer-result', r, 'infer result');
        if (r.requestId !== req.requestId) fail(`requestId ${JSON.stringify(r.requestId)} is not the one sent`);
        if (!isInt(r.usage.inputTokens) || !isInt(r.usage.outputTokens)) fail('usage counts are not non-negative integers');
        if (r.usage.outputTokens > req.maxTokens) fail(`outputTokens ${r.usage.outputTokens} exceeds maxTokens ${req.maxTokens}`);
        if (main.chunks.length > 0) fail('infer without stream=true sent infer/chunk notifications');
      });

      await run('streaming', async () => {
        if (!caps.streaming) return 'skipped: capabilities.streaming is false';
        const streamId = 'conf-stream-1';
        const req = request(m, 'conf-stream-1', Math.min(32, m.maxTokens));
        const r = await main.request<InferResult>(
          RunnerMethod.infer,
          { request: req, stream: true, streamId } satisfies InferParams,
          timeoutMs,
        );
        const seqAtResult = main.seq;
        // Give a late chunk (a violation) the chance to show up.
        await new Promise((res) => setTimeout(res, 50));
        schemaCheck('infer-result', r, 'streamed infer result');
        const mine = main.chunks.filter((c) => c.streamId === streamId);
        for (const c of mine) schemaCheck('infer-chunk-params', c, 'infer/chunk params');
        if (mine.some((c) => c.seq >= seqAtResult)) fail('an infer/chunk arrived after the final result');
        if (main.chunks.some((c) => c.streamId !== streamId)) fail('a chunk carried a streamId that was never sent');
        if (mine.length === 0) fail('no infer/chunk notification before the result');
        mine.forEach((c, i) => {
          if (c.index !== i) fail(`chunk #${i} has index ${c.index}: indices must run 0..n-1 in order`);
        });
        const joined = mine.map((c) => c.delta).join('');
        if (joined !== r.output) fail(`concatenated deltas (${joined.length} chars) differ from output (${r.output.length} chars)`);
        if (!(r.usage.outputTokens >= 1)) fail('usage.outputTokens must be at least 1 for a streamed answer');
        return `${mine.length} chunks`;
      });

      await run('cancellation', async () => {
        if (!caps.cancellation) return 'skipped: capabilities.cancellation is false';
        // A long stream that still fits the context window next to the short prompt.
        const maxTokens = Math.max(1, Math.min(m.maxTokens, m.contextWindow - CONTEXT_RESERVE));
        /** One cancelled call; resolves to the completed result when the runner did not cancel. */
        const attempt = async (n: number, when: 'first-chunk' | 'immediately'): Promise<{ usage: string } | { completed: InferResult; chunks: number }> => {
          const streamId = `conf-cancel-${n}`;
          const cts = new CancellationTokenSource();
          if (when === 'first-chunk') {
            main.onChunk = (p) => {
              if (p.streamId === streamId && !cts.token.isCancellationRequested) cts.cancel();
            };
          }
          try {
            const call = main.request<InferResult>(
              RunnerMethod.infer,
              { request: request(m, streamId, maxTokens), ...(caps.streaming ? { stream: true, streamId } : {}) },
              timeoutMs * 3,
              cts.token,
            );
            if (when === 'immediately') cts.cancel();
            const completed = await call;
            return { completed, chunks: main.chunks.filter((c) => c.streamId === streamId).length };
          } catch (err) {
            const e = expectRpcError(err, 'cancelled infer');
            if (e.code !== RpcCode.RequestCancelled) fail(`cancelled infer ended with ${describeError(e)}, expected -32800`);
            schemaCheck('error-data', e.data, 'error.data');
            const d = e.data as { code?: string; usage?: { inputTokens: unknown; outputTokens: unknown } };
            if (d.code !== 'request-cancelled') fail(`data.code is ${JSON.stringify(d.code)}, expected "request-cancelled"`);
            if (!d.usage || !isInt(d.usage.inputTokens) || !isInt(d.usage.outputTokens)) fail('error.data.usage (partial usage) is missing');
            return { usage: `${d.usage.inputTokens}/${d.usage.outputTokens}` };
          } finally {
            main.onChunk = undefined;
            cts.dispose();
          }
        };
        if (caps.streaming) {
          const first = await attempt(1, 'first-chunk');
          if ('usage' in first) return `partial usage ${first.usage}`;
          // The whole stream may have been faster than one round trip: cancel right after sending.
          const second = await attempt(2, 'immediately');
          if ('usage' in second) {
            return `partial usage ${second.usage} (the stream of ${first.completed.usage.outputTokens} tokens outran a cancel sent after its first chunk; a cancel sent at once was honoured)`;
          }
          fail(
            `the stream completed (${first.completed.usage.outputTokens} tokens) although $/cancelRequest was sent after its first chunk` +
              (first.chunks > 0 ? '' : ' (no chunk arrived)') +
              ', and again when it was sent right after the request: the runner ignores cancellation',
          );
        }
        const only = await attempt(1, 'immediately');
        if ('usage' in only) return `partial usage ${only.usage}`;
        fail(`the call completed (${only.completed.usage.outputTokens} tokens) although $/cancelRequest was sent right after it`);
      });

      await run('invalid-params', async () => {
        try {
          await main.request(RunnerMethod.infer, { request: { requestId: 'conf-bad-1', modelId: m.id, prompt: 'x', maxTokens: 'many' } }, timeoutMs);
        } catch (err) {
          const e = expectRpcError(err, 'infer with bad params');
          if (e.code !== RpcCode.InvalidParams) fail(`bad params answered with ${describeError(e)}, expected -32602`);
          schemaCheck('error-data', e.data, 'error.data');
          return;
        }
        fail('infer with maxTokens:"many" was accepted');
      });

      await run('unknown-method', async () => {
        try {
          await main.request('fedai/noSuchMethod', {}, timeoutMs);
        } catch (err) {
          const e = expectRpcError(err, 'unknown method');
          if (e.code !== RpcCode.MethodNotFound) fail(`unknown method answered with ${describeError(e)}, expected -32601`);
          return;
        }
        fail('an unknown method was answered with a result');
      });

      await run('estimate', async () => {
        if (!caps.estimate) return 'skipped: capabilities.estimate is false';
        const r = await main.request(RunnerMethod.estimate, { request: request(m, 'conf-estimate-1', Math.min(16, m.maxTokens)) }, timeoutMs);
        schemaCheck('estimate-result', r, 'estimate result');
      });

      await run('health', async () => {
        const r = await main.request<{ ok: boolean; loopLatencyMs?: number }>(RunnerMethod.health, undefined, timeoutMs);
        schemaCheck('health-result', r, 'health result');
        if (r.ok !== true) fail('health answered ok:false');
        return r.loopLatencyMs !== undefined ? `loopLatencyMs ${r.loopLatencyMs}` : 'no loopLatencyMs';
      });
    }

    await run('shutdown-exit', async () => {
      if (!handshakeOk) fail('not run: the handshake failed');
      const r = await main.request<unknown>(RunnerMethod.shutdown, undefined, timeoutMs);
      if (r !== null) fail('shutdown must answer null');
      await main.conn.sendNotification(RunnerMethod.exit);
      const e = await main.waitExit(timeoutMs);
      if (!e) fail(`the runner did not exit within ${timeoutMs} ms of the exit notification`);
      if (e.code !== 0) fail(`the runner exited with code ${e.code} (signal ${e.signal}), expected 0`);
    });

    await run('exit-on-stdin-close', async () => {
      const s = spawn();
      await s.request(RunnerMethod.initialize, initParams(), timeoutMs);
      const t0 = performance.now();
      s.proc.stdin!.end();
      const e = await s.waitExit(5000);
      if (!e) fail('the runner was still running 5 s after its stdin closed');
      return `exited ${Math.round(performance.now() - t0)} ms after stdin closed (code ${e.code})`;
    });
  } finally {
    await Promise.all(sessions.map((s) => s.kill()));
  }

  await run('notifications', async () => {
    const other = sessions.flatMap((s) => s.otherNotifications);
    if (other.length > 0) fail(`unknown notification ${JSON.stringify(other[0])} (a runner sends only infer/chunk and log)`);
    const logs = sessions.flatMap((s) => s.logs);
    for (const l of logs) schemaCheck('log-params', l, 'log notification params');
    const sent = new Set(['conf-stream-1', 'conf-cancel-1', 'conf-cancel-2']);
    const stray = sessions.flatMap((s) => s.chunks).find((c) => !sent.has(c.streamId));
    if (stray) fail(`infer/chunk for streamId ${JSON.stringify(stray.streamId.slice(0, 40))}, which no request carried`);
    return `${logs.length} log notification(s)`;
  });

  // Evaluated last, over every process this run started, after their stdout ended.
  await run('no-stdout-noise', async () => {
    const issues = sessions.flatMap((s) => s.frames.issues);
    if (issues.length > 0) {
      fail(`${issues.length} problem(s) on stdout; first: ${issues[0].kind} at byte ${issues[0].offset}: ${issues[0].detail}`);
    }
    const frames = sessions.reduce((n, s) => n + s.frames.frames, 0);
    return `${frames} well-formed frames`;
  });

  return results;
}

/** One line per check: `ok   <name> (12 ms)` or `FAIL <name>: <detail>`. */
export function formatCheckResults(results: CheckResult[]): string {
  return results
    .map((r) => (r.ok ? `ok   ${r.name} (${r.ms} ms)${r.detail?.startsWith('skipped') ? ` [${r.detail}]` : ''}` : `FAIL ${r.name}: ${r.detail ?? 'failed'}`))
    .join('\n');
}
