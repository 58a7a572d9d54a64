/**
 * Pin test (a security surface): the exact environment a runner gets. Widening it must be a deliberate
 * change to this file. Secrets in the supervisor's own process.env never reach a runner.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { configFrom } from '../../supervisor/config/load-config.js';
import { buildRunnerEnv } from '../../supervisor/runners/runner-env.js';

const SECRETS: Record<string, string> = {
  NODE_PRIVATE_KEY_PEM: 'nsec-SECRET-PEM',
  NODE_PRIVATE_KEY_FILE: '/secret/key',
  ROUTER_PUBLIC_KEY_PEM: 'ROUTER-SECRET',
  ROUTER_ENDPOINT: 'http://router.example',
  ROUTER_KEY_ID: 'npub-router',
  NODE_LND_MACAROON_HEX: 'deadbeefMACAROON',
  NODE_CLN_RUNE: 'RUNE-SECRET',
  AWS_SECRET_ACCESS_KEY: 'AWS-SECRET',
  LD_PRELOAD: '/evil.so',
  NODE_OPTIONS: '--require /evil.js',
};

const saved: Record<string, string | undefined> = {};
beforeEach(() => {
  for (const [k, v] of Object.entries(SECRETS)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
});
afterEach(() => {
  for (const k of Object.keys(SECRETS)) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

const FULL = configFrom({
  NODE_RUNNER_URL: 'http://runner.local:9000',
  NODE_LLAMA_CPP_URL: 'http://llama.local:8080',
  NODE_VLLM_URL: 'http://vllm.local:8000',
  NODE_RUNNER_API_KEY: 'generic-key',
  NODE_LLAMA_CPP_API_KEY: 'llama-key',
  NODE_VLLM_API_KEY: 'vllm-key',
  NODE_MODEL_ID: 'my-model',
  NODE_RUNNER_COMMAND: '/opt/llama/server -m x.gguf',
  NODE_LND_MACAROON_HEX: 'abcdef',
  NODE_CLN_RUNE: 'rune',
});
const BASE = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/work/dir', LANG: 'C.UTF-8', TZ: 'UTC' };

describe('buildRunnerEnv (pin)', () => {
  it('mock: base + adapter + model/command, never a backend URL or key', () => {
    expect(buildRunnerEnv(FULL, { adapter: 'mock', workDir: '/work/dir' })).toEqual({
      ...BASE,
      FEDAI_ADAPTER: 'mock',
      FEDAI_MODEL_ID: 'my-model',
      FEDAI_BACKEND_COMMAND: '/opt/llama/server -m x.gguf',
    });
  });

  it('llama_cpp: its own URL and key override the generic ones', () => {
    expect(buildRunnerEnv(FULL, { adapter: 'llama_cpp', workDir: '/work/dir' })).toEqual({
      ...BASE,
      FEDAI_ADAPTER: 'llama_cpp',
      FEDAI_BACKEND_URL: 'http://llama.local:8080',
      FEDAI_BACKEND_API_KEY: 'llama-key',
      FEDAI_MODEL_ID: 'my-model',
      FEDAI_BACKEND_COMMAND: '/opt/llama/server -m x.gguf',
    });
  });

  it('vllm: its own URL and key override the generic ones', () => {
    const env = buildRunnerEnv(FULL, { adapter: 'vllm', workDir: '/work/dir' });
    expect(env.FEDAI_BACKEND_URL).toBe('http://vllm.local:8000');
    expect(env.FEDAI_BACKEND_API_KEY).toBe('vllm-key');
  });

  it.each(['http', 'exec'])('%s: the generic URL and key', (adapter) => {
    const env = buildRunnerEnv(FULL, { adapter, workDir: '/work/dir' });
    expect(env.FEDAI_BACKEND_URL).toBe('http://runner.local:9000');
    expect(env.FEDAI_BACKEND_API_KEY).toBe('generic-key');
  });

  it.each(['', 'unknown', 'constructor', 'toString'])('adapter %j is not a backend adapter: no URL or key', (adapter) => {
    const env = buildRunnerEnv(FULL, { adapter, workDir: '/w' });
    expect(env).not.toHaveProperty('FEDAI_BACKEND_URL');
    expect(env).not.toHaveProperty('FEDAI_BACKEND_API_KEY');
  });

  it('llama_cpp / vllm fall back to NODE_RUNNER_URL and NODE_RUNNER_API_KEY', () => {
    const cfg = configFrom({ NODE_RUNNER_URL: 'http://runner.local:9000', NODE_RUNNER_API_KEY: 'generic-key' });
    for (const adapter of ['llama_cpp', 'vllm']) {
      const env = buildRunnerEnv(cfg, { adapter, workDir: '/w' });
      expect(env.FEDAI_BACKEND_URL).toBe('http://runner.local:9000');
      expect(env.FEDAI_BACKEND_API_KEY).toBe('generic-key');
    }
  });

  it('optional variables are absent when unset', () => {
    expect(buildRunnerEnv(configFrom({}), { adapter: 'http', workDir: '/w' })).toEqual({ ...BASE, HOME: '/w', FEDAI_ADAPTER: 'http' });
  });

  it('the key set is frozen, and no supervisor secret or process.env value leaks', () => {
    const allowed = new Set(['PATH', 'HOME', 'LANG', 'TZ', 'FEDAI_ADAPTER', 'FEDAI_BACKEND_URL', 'FEDAI_BACKEND_API_KEY', 'FEDAI_MODEL_ID', 'FEDAI_BACKEND_COMMAND']);
    for (const adapter of ['mock', 'http', 'llama_cpp', 'vllm', 'exec', '']) {
      const env = buildRunnerEnv(FULL, { adapter, workDir: '/w' });
      for (const k of Object.keys(env)) expect(allowed.has(k)).toBe(true);
      const blob = JSON.stringify(env);
      for (const v of [...Object.values(SECRETS), 'abcdef', 'rune']) expect(blob.includes(`"${v}"`)).toBe(false);
      for (const k of Object.keys(SECRETS)) expect(env).not.toHaveProperty(k);
    }
  });
});
