import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ENV_SPEC } from '../../supervisor/config/env-spec.js';
import { configTable, BEGIN, END } from '../../scripts/dev/config-table.js';

const readme = readFileSync(path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '../../README.md'), 'utf8');

describe('README configuration table', () => {
  it('is exactly the table generated from supervisor/config/env-spec.ts', () => {
    const a = readme.indexOf(BEGIN);
    const b = readme.indexOf(END);
    expect(a).toBeGreaterThan(0);
    expect(readme.slice(a, b + END.length)).toBe(configTable());
  });

  it('documents every variable the issue names', () => {
    for (const name of [
      'NODE_ID', 'NODE_KEY_ID', 'NODE_PRIVATE_KEY_PEM', 'NODE_ENDPOINT', 'NODE_PORT', 'ROUTER_ENDPOINT', 'ROUTER_PUBLIC_KEY_PEM',
      'ROUTER_KEY_ID', 'NODE_ROUTER_ALLOWLIST', 'NODE_RUNNER', 'NODE_RUNNER_URL', 'NODE_MODEL_ID', 'NODE_LLAMA_CPP_URL', 'NODE_VLLM_URL',
      'NODE_HEARTBEAT_MS', 'NODE_CAPACITY_MAX', 'NODE_CAPACITY_LOAD', 'NODE_MAX_PROMPT_BYTES', 'NODE_MAX_TOKENS', 'NODE_RUNNER_TIMEOUT_MS',
      'NODE_MAX_REQUEST_BYTES', 'NODE_SANDBOX_MODE', 'NODE_SANDBOX_ALLOWED_RUNNERS', 'NODE_SANDBOX_ALLOWED_ENDPOINTS', 'NODE_REQUIRE_PAYMENT',
      'NODE_RELAY_BOOTSTRAP', 'NODE_RELAY_AGGREGATORS', 'NODE_RELAY_TRUST', 'NODE_RELAY_MIN_SCORE', 'NODE_RELAY_MAX_RESULTS', 'NODE_DATA_DIR',
    ]) {
      expect(Object.keys(ENV_SPEC)).toContain(name);
      expect(readme).toContain('`' + name + '`');
    }
  });
});
