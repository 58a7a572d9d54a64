/**
 * The adapter registry. Adapters are imported lazily so a runner loads only the code it runs (and the
 * mock never drags in HTTP clients). Each adapter module exports `createAdapter(env): RunnerAdapter`.
 */
import type { RunnerAdapter } from '../adapter.js';

type AdapterModule = { createAdapter(env: NodeJS.ProcessEnv): RunnerAdapter };

/** Adapter name → lazy module import. Names match NODE_SANDBOX_ALLOWED_RUNNERS / NODE_RUNNERS. */
const REGISTRY: Readonly<Record<string, () => Promise<AdapterModule>>> = {
  mock: () => import('./mock.js'),
  http: () => import('./http.js' as string) as Promise<AdapterModule>,
  llama_cpp: () => import('./llama-cpp.js' as string) as Promise<AdapterModule>,
  vllm: () => import('./vllm.js' as string) as Promise<AdapterModule>,
};

export const ADAPTER_NAMES: readonly string[] = Object.keys(REGISTRY);

export async function loadAdapter(name: string, env: NodeJS.ProcessEnv): Promise<RunnerAdapter> {
  const load = Object.prototype.hasOwnProperty.call(REGISTRY, name) ? REGISTRY[name] : undefined;
  if (!load) {
    throw new Error(`unknown adapter "${name}" (FEDAI_ADAPTER); known adapters: ${ADAPTER_NAMES.join(', ')}`);
  }
  let mod: AdapterModule;
  try {
    mod = await load();
  } catch (err) {
    throw new Error(`adapter "${name}" could not be loaded`, { cause: err });
  }
  if (typeof mod.createAdapter !== 'function') throw new Error(`adapter "${name}" does not export createAdapter(env)`);
  return mod.createAdapter(env);
}
