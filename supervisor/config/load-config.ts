/**
 * Parses and validates the environment against ENV_SPEC, in one place. All problems are collected and
 * reported together; start-up stops on any of them (see supervisor/cli/fedai-node.ts).
 */
import { ENV_SPEC, type EnvName, type VarSpec } from './env-spec.js';
import { isNpub } from '../crypto/keys.js';

type Spec = typeof ENV_SPEC;
type ValueOf<S extends VarSpec> = S['kind'] extends 'int' | 'number'
  ? number
  : S['kind'] extends 'bool'
    ? boolean
    : S['kind'] extends 'csv'
      ? readonly string[]
      : S extends { values: readonly (infer V)[] }
        ? V
        : string;

/** The parsed environment: one typed field per variable, named as the variable. */
export type Config = {
  readonly [K in EnvName]: Spec[K] extends { default: string } | { kind: 'csv' } ? ValueOf<Spec[K]> : ValueOf<Spec[K]> | undefined;
};

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

function parseOne(name: string, spec: VarSpec, raw: string): { value?: unknown; problem?: string } {
  const s = raw.trim();
  switch (spec.kind) {
    case 'int': {
      if (!/^-?\d+$/.test(s)) return { problem: `${name}=${JSON.stringify(raw)}: expected an integer` };
      const n = Number(s);
      if (!Number.isSafeInteger(n)) return { problem: `${name}=${s}: integer out of range` };
      return rangeCheck(name, spec, n);
    }
    case 'number': {
      const n = Number(s);
      if (s === '' || !Number.isFinite(n)) return { problem: `${name}=${JSON.stringify(raw)}: expected a number` };
      return rangeCheck(name, spec, n);
    }
    case 'bool':
      if (/^(true|1|yes)$/i.test(s)) return { value: true };
      if (/^(false|0|no)$/i.test(s)) return { value: false };
      return { problem: `${name}=${JSON.stringify(raw)}: expected true or false` };
    case 'enum':
      if (spec.values!.includes(s)) return { value: s };
      return { problem: `${name}=${JSON.stringify(raw)}: expected one of ${spec.values!.join(', ')}` };
    case 'url': {
      try {
        const u = new URL(s);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') return { problem: `${name}=${s}: expected an http(s) URL` };
        return { value: s.replace(/\/+$/, '') };
      } catch {
        return { problem: `${name}=${JSON.stringify(raw)}: expected an absolute http(s) URL` };
      }
    }
    case 'csv':
      return { value: s.split(',').map((x) => x.trim()).filter((x) => x.length > 0) };
    case 'string':
    case 'path':
      return { value: s };
  }
}

function rangeCheck(name: string, spec: VarSpec, n: number): { value?: unknown; problem?: string } {
  if (spec.min !== undefined && n < spec.min) return { problem: `${name}=${n}: must be ≥ ${spec.min}` };
  if (spec.max !== undefined && n > spec.max) return { problem: `${name}=${n}: must be ≤ ${spec.max}` };
  return { value: n };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(ENV_SPEC) as [EnvName, VarSpec][]) {
    const given = env[name];
    const raw = given !== undefined && given.trim() !== '' ? given : spec.default;
    if (raw === undefined) {
      out[name] = spec.kind === 'csv' ? [] : undefined;
      continue;
    }
    const r = parseOne(name, spec, raw);
    if (r.problem) problems.push(r.problem);
    else out[name] = r.value;
  }
  const cfg = out as Config;
  // Cross-checks run even when a value failed to parse, so every problem is reported in one go
  // (a field that failed is simply undefined here, and every cross-check tolerates that).
  crossCheck(cfg, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return cfg;
}

function crossCheck(cfg: Config, problems: string[]): void {
  for (const name of ['NODE_ROUTER_ALLOWLIST', 'NODE_ROUTER_BLOCK'] as const) {
    for (const entry of cfg[name]) if (!isNpub(entry)) problems.push(`${name}: "${entry}" is not an npub`);
  }
  if (cfg.ROUTER_KEY_ID !== undefined && !isNpub(cfg.ROUTER_KEY_ID)) problems.push(`ROUTER_KEY_ID: "${cfg.ROUTER_KEY_ID}" is not an npub`);
  if (cfg.NODE_KEY_ID !== undefined && !isNpub(cfg.NODE_KEY_ID)) problems.push(`NODE_KEY_ID: "${cfg.NODE_KEY_ID}" is not an npub`);
  if (cfg.NODE_PRIVATE_KEY_PEM !== undefined && cfg.NODE_PRIVATE_KEY_FILE !== undefined) {
    problems.push('NODE_PRIVATE_KEY_PEM and NODE_PRIVATE_KEY_FILE are both set: choose one');
  }
  if (cfg.NODE_RUNNER === 'exec' && cfg.NODE_RUNNER_EXEC === undefined) problems.push('NODE_RUNNER=exec needs NODE_RUNNER_EXEC');
  if (cfg.NODE_LN_BACKEND === 'lnd' && (cfg.NODE_LND_REST_URL === undefined || cfg.NODE_LND_MACAROON_HEX === undefined)) {
    problems.push('NODE_LN_BACKEND=lnd needs NODE_LND_REST_URL and NODE_LND_MACAROON_HEX');
  }
  if (cfg.NODE_LN_BACKEND === 'cln' && (cfg.NODE_CLN_REST_URL === undefined || cfg.NODE_CLN_RUNE === undefined)) {
    problems.push('NODE_LN_BACKEND=cln needs NODE_CLN_REST_URL and NODE_CLN_RUNE');
  }
  if (cfg.NODE_RUNNER_RESTART_MAX_MS < cfg.NODE_RUNNER_RESTART_BASE_MS) {
    problems.push('NODE_RUNNER_RESTART_MAX_MS must be ≥ NODE_RUNNER_RESTART_BASE_MS');
  }
  if (cfg.NODE_LN_VERIFY_RETRY_MAX_DELAY_MS < cfg.NODE_LN_VERIFY_RETRY_MIN_DELAY_MS) {
    problems.push('NODE_LN_VERIFY_RETRY_MAX_DELAY_MS must be ≥ NODE_LN_VERIFY_RETRY_MIN_DELAY_MS');
  }
  for (const entry of cfg.NODE_RELAY_TRUST) {
    if (!/^[^=]+=-?\d+(\.\d+)?$/.test(entry)) problems.push(`NODE_RELAY_TRUST: "${entry}" is not url=score`);
  }
  for (const entry of cfg.NODE_SANDBOX_ALLOWED_ENDPOINTS) {
    try {
      const u = new URL(entry);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
    } catch {
      problems.push(`NODE_SANDBOX_ALLOWED_ENDPOINTS: "${entry}" is not an absolute http(s) URL`);
    }
  }
}

/** Builds a config for tests and tools: the defaults plus the given overrides (strings, as in env). */
export function configFrom(overrides: Partial<Record<EnvName, string>> = {}): Config {
  return loadConfig(overrides as NodeJS.ProcessEnv);
}

/** Node.js's own NODE_* variables, which are not ours to judge. */
const NODEJS_OWN = /^NODE_(OPTIONS|EXTRA_CA_CERTS|PATH|DEBUG|DEBUG_NATIVE|NO_WARNINGS|TLS_REJECT_UNAUTHORIZED|V8_COVERAGE|COMPILE_CACHE|REPL_\w+|PENDING_DEPRECATION|PENDING_PIPE_INSTANCES|DISABLE_COLORS|ICU_DATA|PRESERVE_SYMLINKS|REDIRECT_WARNINGS|SKIP_PLATFORM_CHECK|UNIQUE_ID|CHANNEL_FD|CHANNEL_SERIALIZATION_MODE|CLUSTER_SCHED_POLICY|TEST_CONTEXT|USE_ENV_PROXY|USE_SYSTEM_CA|MAX_LISTENERS)$/;

/** NODE_* / ROUTER_* variables that look like ours but are not in the table: likely typos (NODE_RUNER). */
export function unknownVariables(env: NodeJS.ProcessEnv = process.env): string[] {
  return Object.keys(env)
    .filter((k) => (k.startsWith('NODE_') || k.startsWith('ROUTER_')) && !(k in ENV_SPEC) && !NODEJS_OWN.test(k))
    .sort();
}
