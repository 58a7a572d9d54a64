/**
 * A runner's environment, built from nothing (default deny). Nothing from the supervisor's own
 * process.env reaches a runner: only the fixed base below and the FEDAI_* variables derived from the
 * parsed Config. The supervisor holds the node signing key, router trust and Lightning credentials; a
 * runner needs none of them. test/runners/runner-env.test.ts pins the exact key set per adapter.
 *
 *   PATH, HOME (= the runner's work dir), LANG, TZ   fixed base
 *   FEDAI_ADAPTER                                     always
 *   FEDAI_BACKEND_URL      llama_cpp: NODE_LLAMA_CPP_URL ?? NODE_RUNNER_URL; vllm: NODE_VLLM_URL ?? NODE_RUNNER_URL;
 *                          http and exec: NODE_RUNNER_URL; mock: never
 *   FEDAI_BACKEND_API_KEY  llama_cpp: NODE_LLAMA_CPP_API_KEY ?? NODE_RUNNER_API_KEY; vllm: NODE_VLLM_API_KEY ??
 *                          NODE_RUNNER_API_KEY; http and exec: NODE_RUNNER_API_KEY; mock: never
 *   FEDAI_MODEL_ID         NODE_MODEL_ID
 *   FEDAI_BACKEND_COMMAND  NODE_RUNNER_COMMAND
 * Each optional variable is present only when its source is set. The manager adds FEDAI_RUNNER_ID (the
 * instance id, used as the process-tree marker) and the launcher may add FEDAI_EGRESS_PROXY.
 */
import type { Config } from '../config/load-config.js';

export const RUNNER_BASE_PATH = '/usr/local/bin:/usr/bin:/bin';

type BackendKey = 'NODE_RUNNER_URL' | 'NODE_LLAMA_CPP_URL' | 'NODE_VLLM_URL' | 'NODE_RUNNER_API_KEY' | 'NODE_LLAMA_CPP_API_KEY' | 'NODE_VLLM_API_KEY';

/**
 * Adapters that talk to a backend over the network, and where their URL and key come from (first set
 * source wins). An adapter not listed here gets neither.
 */
const BACKEND_SOURCES = new Map<string, { url: readonly BackendKey[]; key: readonly BackendKey[] }>([
  ['llama_cpp', { url: ['NODE_LLAMA_CPP_URL', 'NODE_RUNNER_URL'], key: ['NODE_LLAMA_CPP_API_KEY', 'NODE_RUNNER_API_KEY'] }],
  ['vllm', { url: ['NODE_VLLM_URL', 'NODE_RUNNER_URL'], key: ['NODE_VLLM_API_KEY', 'NODE_RUNNER_API_KEY'] }],
  ['http', { url: ['NODE_RUNNER_URL'], key: ['NODE_RUNNER_API_KEY'] }],
  ['exec', { url: ['NODE_RUNNER_URL'], key: ['NODE_RUNNER_API_KEY'] }],
]);

function firstSet(config: Config, keys: readonly BackendKey[]): string | undefined {
  for (const k of keys) if (config[k] !== undefined) return config[k];
  return undefined;
}

export function buildRunnerEnv(config: Config, opts: { adapter: string; workDir: string }): Record<string, string> {
  const env: Record<string, string> = {
    PATH: RUNNER_BASE_PATH,
    HOME: opts.workDir,
    LANG: 'C.UTF-8',
    TZ: 'UTC',
    FEDAI_ADAPTER: opts.adapter,
  };
  const sources = BACKEND_SOURCES.get(opts.adapter);
  if (sources) {
    const url = firstSet(config, sources.url);
    if (url !== undefined) env.FEDAI_BACKEND_URL = url;
    const key = firstSet(config, sources.key);
    if (key !== undefined) env.FEDAI_BACKEND_API_KEY = key;
  }
  if (config.NODE_MODEL_ID !== undefined) env.FEDAI_MODEL_ID = config.NODE_MODEL_ID;
  if (config.NODE_RUNNER_COMMAND !== undefined) env.FEDAI_BACKEND_COMMAND = config.NODE_RUNNER_COMMAND;
  return env;
}
