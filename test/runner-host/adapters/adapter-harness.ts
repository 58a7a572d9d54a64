/**
 * Jest-side helpers shared by the backend adapter tests (kept apart from helpers.ts, which is plain
 * Node and is also imported outside Jest).
 */
import { afterEach, expect } from '@jest/globals';
import { AdapterError, type InferContext, type RunnerAdapter } from '../../../runner-host/adapter.js';
import { startFake, type FakeBackend } from './helpers.js';

/** Awaits `p`, which must reject with an AdapterError; returns that error. */
export async function caught(p: Promise<unknown>): Promise<AdapterError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(AdapterError);
    return e as AdapterError;
  }
  throw new Error('expected an AdapterError');
}

/** An infer context with a signal that is never aborted unless one is given. */
export const ctx = (o: { onDelta?: (d: string) => void; signal?: AbortSignal } = {}): InferContext => ({ signal: o.signal ?? new AbortController().signal, ...o });

/**
 * Per-test adapters and fake backends: whatever is made through `adapter` and `fake` is stopped after
 * each test. Call once, at the top level of a test file.
 */
export function perTestBackends(
  createAdapter: (env: NodeJS.ProcessEnv) => RunnerAdapter,
  fakeScript: string,
): { adapter(env: NodeJS.ProcessEnv): RunnerAdapter; fake(args?: string[]): Promise<FakeBackend> } {
  const adapters: RunnerAdapter[] = [];
  const fakes: FakeBackend[] = [];
  afterEach(async () => {
    await Promise.all(adapters.splice(0).map((a) => a.stop()));
    await Promise.all(fakes.splice(0).map((f) => f.stop()));
  });
  return {
    adapter(env) {
      const a = createAdapter(env);
      adapters.push(a);
      return a;
    },
    async fake(args = []) {
      const f = await startFake(fakeScript, args);
      fakes.push(f);
      return f;
    },
  };
}
