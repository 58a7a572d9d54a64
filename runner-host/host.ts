/**
 * The runner host: turns a RunnerAdapter into the JSON-RPC runner protocol on stdio
 * (docs/runner-protocol.md, schemas/runner/*.json). Every request's params are validated against the
 * schemas; `initialize` must come first and must carry a compatible major version; `infer` is capped at
 * adapter.maxParallel(); $/cancelRequest aborts the adapter's signal; the process should exit when the
 * `exit` notification arrives or when stdin closes, whichever comes first.
 *
 * Nothing here ever puts a prompt or an output into a log line or an error message: errors that are
 * not AdapterErrors become `runner-error` with a fixed message, and logs carry names and codes only.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import {
  createMessageConnection,
  ResponseError,
  StreamMessageReader,
  type CancellationToken,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import { FramedMessageWriter } from '../supervisor/protocol/framed-message-writer.js';
import { ERRORS, isUsage, type ErrorCode } from '../supervisor/errors.js';
import {
  RUNNER_PROTOCOL_VERSION,
  RpcCode,
  RunnerMethod,
  protocolMajor,
  type EstimateParams,
  type HealthResult,
  type InferChunkParams,
  type InferParams,
  type InferResult,
  type InitializeParams,
  type InitializeResult,
  type ListModelsResult,
  type RunnerErrorData,
  type Usage,
} from '../supervisor/protocol/runner-protocol.js';
import { PACKAGE_ROOT } from '../supervisor/runners/runner-command.js';
import { AdapterError, type RunnerAdapter } from './adapter.js';

/** Directory of the normative JSON Schemas (draft 2020-12). */
export const RUNNER_SCHEMA_DIR: string = join(PACKAGE_ROOT, 'schemas', 'runner');

/** Schema file names (without .json) by role. */
export const RUNNER_SCHEMA_FILES = [
  'defs',
  'initialize-params',
  'initialize-result',
  'list-models-result',
  'infer-params',
  'infer-result',
  'infer-chunk-params',
  'estimate-params',
  'estimate-result',
  'health-result',
  'log-params',
  'error-data',
] as const;
export type RunnerSchemaName = Exclude<(typeof RUNNER_SCHEMA_FILES)[number], 'defs'>;

export interface RunnerValidator {
  (value: unknown): boolean;
  /** Human-readable, value-free error lines of the last failed call ("/request/maxTokens must be integer"). */
  lastErrors(): string[];
}

let validators: Map<RunnerSchemaName, RunnerValidator> | undefined;

function describeErrors(errors: ErrorObject[] | null | undefined): string[] {
  if (!errors) return [];
  // instancePath + message only: ajv messages name types and limits, never the offending value.
  return errors.slice(0, 16).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`.trim());
}

/** Validators for every runner-protocol schema, compiled once per process. */
export function runnerValidators(): Map<RunnerSchemaName, RunnerValidator> {
  if (validators) return validators;
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
  const ids = new Map<string, string>();
  for (const file of readdirSync(RUNNER_SCHEMA_DIR).filter((f) => f.endsWith('.json')).sort()) {
    const schema = JSON.parse(readFileSync(join(RUNNER_SCHEMA_DIR, file), 'utf8')) as { $id: string };
    ajv.addSchema(schema);
    ids.set(file.replace(/\.json$/, ''), schema.$id);
  }
  const out = new Map<RunnerSchemaName, RunnerValidator>();
  for (const name of RUNNER_SCHEMA_FILES) {
    if (name === 'defs') continue;
    const id = ids.get(name);
    if (!id) throw new Error(`runner schema ${name}.json is missing from ${RUNNER_SCHEMA_DIR}`);
    const fn = ajv.getSchema(id) as ValidateFunction | undefined;
    if (!fn) throw new Error(`runner schema ${name}.json did not compile`);
    let last: string[] = [];
    const v = ((value: unknown) => {
      const ok = fn(value) as boolean;
      last = ok ? [] : describeErrors(fn.errors);
      return ok;
    }) as RunnerValidator;
    v.lastErrors = () => last;
    out.set(name, v);
  }
  validators = out;
  return out;
}

/**
 * A JSON-RPC error whose data follows RunnerErrorData; the rpc number comes from the catalogue. A usage
 * that is not two non-negative integers is left out (adapters report it; it is not trusted blindly).
 */
export function runnerError(
  code: ErrorCode,
  message: string,
  extra: { details?: string[]; usage?: Usage; rpc?: number } = {},
): ResponseError<RunnerErrorData> {
  const data: RunnerErrorData = { code };
  if (extra.details && extra.details.length > 0) data.details = extra.details;
  const usage = safeUsage(extra.usage);
  if (usage) data.usage = usage;
  return new ResponseError<RunnerErrorData>(extra.rpc ?? ERRORS[code].rpc, message, data);
}

/** One JSON line on stderr. Callers pass names, codes and numbers only. */
function logStderr(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  try {
    process.stderr.write(`${JSON.stringify({ level, time: new Date().toISOString(), name: 'runner-host', msg, ...fields })}\n`);
  } catch {
    // stderr gone: nothing to do.
  }
}

function safeUsage(u: Usage | undefined): Usage | undefined {
  if (!isUsage(u)) return undefined;
  return { inputTokens: u.inputTokens, outputTokens: u.outputTokens };
}

/** Maps anything an adapter throws to a ResponseError without leaking messages of unknown errors. */
function toResponseError(err: unknown, method: string): ResponseError<unknown> {
  if (err instanceof ResponseError) return err;
  if (err instanceof AdapterError) {
    // AdapterError messages are written by our adapters and carry no prompt or output.
    return runnerError(err.code, err.message, { details: err.details, usage: err.usage });
  }
  logStderr('error', 'adapter threw an unexpected error', {
    method,
    errorName: err instanceof Error ? err.name : typeof err,
  });
  return runnerError('runner-error', 'runner error', { rpc: RpcCode.InternalError });
}

/** Resolves after `ms`, or never blocks longer than that waiting for `p`. */
async function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([
    p.catch(() => undefined),
    new Promise<void>((r) => {
      t = setTimeout(r, ms);
      t.unref?.();
    }),
  ]);
  if (t) clearTimeout(t);
}

export interface ServeIo {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
}

export interface ServeOptions {
  /** How long adapter.stop() may take when stdin closes or `exit` arrives (default 2000 ms). */
  stopTimeoutMs?: number;
}

/**
 * Serves the runner protocol for `adapter` on `io` (default: process.stdin/stdout). Resolves when the
 * runner should exit: after the `exit` notification, or when the input closes. It never calls
 * process.exit itself; runner-host/main.ts does.
 */
export function serveRunner(adapter: RunnerAdapter, io?: ServeIo, opts: ServeOptions = {}): Promise<void> {
  const input = io?.input ?? process.stdin;
  const output = io?.output ?? process.stdout;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 2000;
  const v = runnerValidators();

  let initialized = false;
  let initializing = false;
  /** Settles when an in-progress initialize does; requests that arrive meanwhile wait for it. */
  let initPending: Promise<unknown> | undefined;
  let shuttingDown = false;
  let stopped: Promise<void> | undefined;
  let finished = false;
  let inflight = 0;
  /** Requests being handled (of any method). */
  let handling = 0;
  const controllers = new Set<AbortController>();

  const connection: MessageConnection = createMessageConnection(
    new StreamMessageReader(input),
    new FramedMessageWriter(output),
  );

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });

  const stopAdapter = (): Promise<void> => {
    stopped ??= Promise.resolve()
      .then(() => adapter.stop())
      .catch((err: unknown) => {
        logStderr('warn', 'adapter stop failed', { errorName: err instanceof Error ? err.name : typeof err });
      });
    return stopped;
  };

  const abortAll = (reason: string): void => {
    for (const c of controllers) c.abort(reason);
  };

  const finish = async (why: string): Promise<void> => {
    if (finished) return;
    finished = true;
    shuttingDown = true;
    logStderr('info', 'runner host finishing', { why });
    abortAll('shutdown');
    // Let requests that were already read get their answer (cancelled inferences answer -32800 at
    // once), but never wait long: a runner whose stdin closed must go.
    await bounded(
      (async () => {
        for (let idle = 0; idle < 2; ) {
          await new Promise<void>((r) => setTimeout(r, 5));
          idle = handling === 0 ? idle + 1 : 0;
        }
      })(),
      500,
    );
    await bounded(stopAdapter(), stopTimeoutMs);
    try {
      connection.dispose();
    } catch {
      // already disposed
    }
    resolveDone();
  };

  const validateParams = (schema: RunnerSchemaName, params: unknown): void => {
    const check = v.get(schema)!;
    if (!check(params)) {
      throw runnerError('invalid-params', 'invalid params', { details: check.lastErrors() });
    }
  };

  const noParams = (params: unknown): void => {
    const empty =
      params === undefined ||
      params === null ||
      (Array.isArray(params) && params.length === 0) ||
      (typeof params === 'object' && !Array.isArray(params));
    if (!empty) throw runnerError('invalid-params', 'this method takes no params', { details: ['/ must be object or absent'] });
  };

  const handleInitialize = async (params: unknown): Promise<InitializeResult> => {
    validateParams('initialize-params', params);
    const p = params as InitializeParams;
    if (initialized || initializing) {
      throw runnerError('runner-protocol-error', 'initialize was already called', { details: ['initialize must be sent once'] });
    }
    if (protocolMajor(p.protocolVersion) !== protocolMajor(RUNNER_PROTOCOL_VERSION)) {
      throw runnerError('protocol-version-mismatch', 'incompatible protocol version', {
        details: [`runner speaks ${RUNNER_PROTOCOL_VERSION}, supervisor asked for ${p.protocolVersion}`],
      });
    }
    initializing = true;
    let models;
    try {
      models = await adapter.listModels();
    } finally {
      initializing = false;
    }
    initialized = true;
    logStderr('info', 'initialized', { runnerId: p.runnerId, adapter: adapter.name, models: models.length });
    return {
      protocolVersion: RUNNER_PROTOCOL_VERSION,
      runner: { name: adapter.name, version: adapter.version },
      models,
      limits: { maxParallel: adapter.maxParallel() },
      capabilities: { ...adapter.capabilities },
    };
  };

  const handleInfer = async (params: unknown, token: CancellationToken): Promise<InferResult> => {
    validateParams('infer-params', params);
    const p = params as InferParams;
    const max = Math.max(1, adapter.maxParallel());
    if (inflight >= max) {
      throw runnerError('capacity-exhausted', 'runner is at capacity', { details: [`maxParallel is ${max}`] });
    }
    inflight++;
    // Aborted with 'cancel', 'deadline' or 'shutdown' (abortAll); the first reason stays in ac.signal.reason.
    const ac = new AbortController();
    controllers.add(ac);
    const timedOut = (): boolean => ac.signal.reason === 'deadline';
    let deadlineTimer: NodeJS.Timeout | undefined;
    const cancelSub = token.onCancellationRequested(() => ac.abort('cancel'));
    if (token.isCancellationRequested) ac.abort('cancel');
    if (p.deadlineMs !== undefined) {
      const left = p.deadlineMs - Date.now();
      if (left <= 0) ac.abort('deadline');
      else deadlineTimer = setTimeout(() => ac.abort('deadline'), Math.min(left, 2_147_483_647));
    }

    const streaming = p.stream === true && p.streamId !== undefined;
    let index = 0;
    const sendChunk = (delta: string): void => {
      if (!streaming || ac.signal.aborted || finished) return;
      const chunk: InferChunkParams = { streamId: p.streamId!, index: index++, delta };
      connection.sendNotification(RunnerMethod.inferChunk, chunk).catch(() => undefined);
    };
    try {
      const result = await adapter.infer(p.request, {
        signal: ac.signal,
        ...(streaming && adapter.capabilities.streaming ? { onDelta: sendChunk } : {}),
        ...(p.traceparent ? { traceparent: p.traceparent } : {}),
      });
      if (ac.signal.aborted) {
        // The adapter finished anyway; a cancelled call still ends with -32800 so the caller's
        // bookkeeping stays simple. Usage is the full usage the adapter reported.
        throw new AdapterError(timedOut() ? 'runner-timeout' : 'request-cancelled', 'request cancelled', {
          usage: result.usage,
        });
      }
      if (streaming && !adapter.capabilities.streaming && result.output.length > 0) sendChunk(result.output);
      return { ...result, requestId: p.request.requestId };
    } catch (err) {
      if (err instanceof AdapterError && err.code === 'request-cancelled' && timedOut()) {
        throw runnerError('runner-timeout', 'deadline passed', { usage: err.usage });
      }
      if (ac.signal.aborted && !(err instanceof AdapterError)) {
        throw runnerError(timedOut() ? 'runner-timeout' : 'request-cancelled', 'request cancelled', {
          usage: { inputTokens: 0, outputTokens: 0 },
        });
      }
      throw err;
    } finally {
      if (deadlineTimer) clearTimeout(deadlineTimer);
      cancelSub.dispose();
      controllers.delete(ac);
      inflight--;
    }
  };

  const handleHealth = async (): Promise<HealthResult> => {
    const t0 = performance.now();
    await new Promise<void>((r) => setImmediate(r));
    const loopLatencyMs = Math.round((performance.now() - t0) * 1000) / 1000;
    const h = await adapter.health();
    return {
      ok: h.ok === true,
      ...(h.detail !== undefined ? { detail: h.detail } : {}),
      loopLatencyMs: h.loopLatencyMs ?? loopLatencyMs,
    };
  };

  connection.onRequest(async (method: string, params: unknown, token: CancellationToken): Promise<unknown> => {
    handling++;
    try {
      if (method === RunnerMethod.initialize) {
        const p = handleInitialize(params);
        if (initializing) initPending = p.catch(() => undefined);
        return await p;
      }
      if (!initialized && initializing && initPending) await initPending;
      const known = (
        [RunnerMethod.listModels, RunnerMethod.infer, RunnerMethod.estimate, RunnerMethod.health, RunnerMethod.shutdown] as string[]
      ).includes(method);
      if (!known || (method === RunnerMethod.estimate && !adapter.capabilities.estimate)) {
        throw runnerError('method-not-found', 'method not found', { details: [`unknown method ${method.slice(0, 64)}`] });
      }
      if (!initialized) {
        throw runnerError('runner-protocol-error', 'not initialized', { details: ['initialize must be the first request'] });
      }
      if (shuttingDown && method !== RunnerMethod.shutdown) {
        throw runnerError('node-draining', 'runner is shutting down');
      }
      switch (method) {
        case RunnerMethod.listModels: {
          noParams(params);
          const result: ListModelsResult = { models: await adapter.listModels() };
          return result;
        }
        case RunnerMethod.infer:
          return await handleInfer(params, token);
        case RunnerMethod.estimate:
          validateParams('estimate-params', params);
          return await adapter.estimate((params as EstimateParams).request);
        case RunnerMethod.health:
          noParams(params);
          return await handleHealth();
        case RunnerMethod.shutdown:
          noParams(params);
          shuttingDown = true;
          abortAll('shutdown');
          await stopAdapter();
          return null;
      }
      throw runnerError('method-not-found', 'method not found');
    } catch (err) {
      throw toResponseError(err, method);
    } finally {
      handling--;
    }
  });

  connection.onNotification(RunnerMethod.exit, () => {
    void finish('exit notification');
  });
  // Unknown notifications are ignored (forward compatibility).
  connection.onNotification(() => undefined);
  connection.onClose(() => {
    void finish('connection closed');
  });
  connection.onError(([err]) => {
    logStderr('warn', 'protocol error on input', { errorName: err instanceof Error ? err.name : typeof err });
  });

  // The exit-when-stdin-closes rule: a supervisor that dies closes our stdin; we must not linger.
  input.on('end', () => void finish('stdin ended'));
  input.on('close', () => void finish('stdin closed'));
  input.on('error', () => void finish('stdin error'));
  // A supervisor that dies also breaks our stdout: EPIPE must end the runner, not crash it noisily.
  output.on('error', () => void finish('stdout error'));

  connection.listen();
  return done;
}
