/**
 * Sandbox profiles: JSON files (sandbox-profiles/<name>.json) validated against
 * schemas/sandbox-profile.json with ajv (unknown keys and relative paths rejected). NODE_SANDBOX_MODE
 * selects one (or `disabled`); NODE_SANDBOX_PROFILE_DIR is searched before the shipped directory.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { FedaiError } from '../errors.js';

export type LayerName = 'bwrap' | 'userns' | 'seccomp' | 'setpriv' | 'root' | 'prlimit' | 'cgroup';
export type SeccompLevel = 'off' | 'default' | 'strict';

export interface RoPathSpec {
  readonly path: string;
  readonly optional?: boolean;
}

export interface SandboxProfile {
  readonly name: string;
  readonly description?: string;
  readonly require: readonly LayerName[];
  readonly guarantees?: readonly string[];
  readonly uidPool: { readonly first: number; readonly last: number };
  readonly env: { readonly allow: readonly string[]; readonly set: Readonly<Record<string, string>> };
  readonly cwd: string;
  readonly fs: {
    readonly ro: readonly (string | RoPathSpec)[];
    readonly rw: readonly { readonly host: string; readonly sandbox: string }[];
    readonly tmpfs: readonly string[];
    readonly devices: readonly RoPathSpec[];
    readonly symlinks?: readonly { readonly target: string; readonly link: string }[];
  };
  readonly network: { readonly mode: 'none' | 'egress'; readonly proxySocket?: string };
  readonly seccomp: SeccompLevel;
  readonly rlimits: Readonly<Partial<Record<'NOFILE' | 'NPROC' | 'FSIZE' | 'CORE' | 'CPU' | 'AS', number>>>;
  readonly cgroup: { readonly memoryMaxBytes?: number; readonly pidsMax?: number; readonly cpuMaxPercent?: number };
  readonly watchdog: WatchdogLimits;
  readonly gpu?: { readonly cudaVisibleDevices?: 'per-runner' | 'all' | 'none' };
}

export interface WatchdogLimits {
  readonly intervalMs: number;
  readonly memoryMaxBytes?: number;
  readonly cpuMaxPercent?: number;
  readonly cpuWindowMs?: number;
  readonly pidsMax?: number;
  readonly wallMaxMs?: number;
  readonly idleMaxMs?: number;
}

export const DEFAULT_PROXY_SOCKET = '/run/fedai/egress.sock';

/** The package root (holds package.json, sandbox-profiles/, schemas/), from source or from dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && existsSync(join(dir, 'sandbox-profiles'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('fedai-node package root (with sandbox-profiles/) not found');
}

export function shippedProfileDir(): string {
  return join(packageRoot(), 'sandbox-profiles');
}

let validator: ValidateFunction | undefined;
function validate(): ValidateFunction {
  if (!validator) {
    const schema = JSON.parse(readFileSync(join(packageRoot(), 'schemas', 'sandbox-profile.json'), 'utf8')) as Record<string, unknown>;
    const ajv = new Ajv({ allErrors: true, strict: true });
    validator = ajv.compile(schema);
  }
  return validator;
}

/** Validates a parsed profile; throws FedaiError('config-invalid') listing every problem. */
export function parseProfile(value: unknown, source = 'profile'): SandboxProfile {
  const v = validate();
  if (!v(value)) {
    const details = (v.errors ?? []).map((e) => `${source}${e.instancePath || '/'}: ${e.message ?? 'invalid'}${e.params && 'additionalProperty' in e.params ? ` (${String((e.params as { additionalProperty: unknown }).additionalProperty)})` : ''}`);
    throw new FedaiError('config-invalid', { details, message: `invalid sandbox profile ${source}:\n  - ${details.join('\n  - ')}` });
  }
  const p = value as SandboxProfile;
  if (p.uidPool.last < p.uidPool.first) {
    throw new FedaiError('config-invalid', { details: [`${source}/uidPool: last < first`], message: `invalid sandbox profile ${source}: uidPool.last < uidPool.first` });
  }
  return p;
}

export function loadProfileFile(file: string): SandboxProfile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new FedaiError('config-invalid', { cause: err, details: [`${file}: not readable JSON`], message: `sandbox profile ${file} is not readable JSON` });
  }
  const p = parseProfile(raw, file);
  const expected = file.replace(/^.*\//, '').replace(/\.json$/, '');
  if (p.name !== expected) {
    throw new FedaiError('config-invalid', { details: [`${file}: name "${p.name}" does not match the file name`], message: `sandbox profile ${file}: name "${p.name}" does not match the file name` });
  }
  return p;
}

function dirsToSearch(profileDir?: string): string[] {
  const dirs: string[] = [];
  if (profileDir) dirs.push(resolve(profileDir));
  dirs.push(shippedProfileDir());
  return dirs;
}

/** Names of every profile found (NODE_SANDBOX_PROFILE_DIR first, then the shipped ones), sorted. */
export function listProfiles(profileDir?: string): string[] {
  const names = new Set<string>();
  for (const d of dirsToSearch(profileDir)) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) if (/^[a-z][a-z0-9_-]*\.json$/.test(f)) names.add(f.slice(0, -5));
  }
  return [...names].sort();
}

/** Loads a profile by name; an unknown name is an error that lists the available profiles. */
export function loadProfile(name: string, profileDir?: string): SandboxProfile {
  if (!/^[a-z][a-z0-9_-]{0,39}$/.test(name)) throw unknownProfile(name, profileDir);
  for (const d of dirsToSearch(profileDir)) {
    const f = join(d, `${name}.json`);
    if (existsSync(f)) return loadProfileFile(f);
  }
  throw unknownProfile(name, profileDir);
}

function unknownProfile(name: string, profileDir?: string): FedaiError {
  const available = [...listProfiles(profileDir), 'disabled'];
  return new FedaiError('config-invalid', {
    details: [`NODE_SANDBOX_MODE=${JSON.stringify(name)}: no such profile; available: ${available.join(', ')}`],
    message: `NODE_SANDBOX_MODE=${JSON.stringify(name)} is not a sandbox profile; available: ${available.join(', ')}`,
  });
}

/** NODE_SANDBOX_MODE, or its default: `dev`, or `strict` when NODE_ENV=production. */
export function resolveSandboxMode(cfg: { NODE_SANDBOX_MODE?: string | undefined; NODE_ENV?: string }): string {
  const m = cfg.NODE_SANDBOX_MODE?.trim();
  if (m) return m;
  return cfg.NODE_ENV === 'production' ? 'strict' : 'dev';
}

/** True when `name` is admitted by an allowlist of names or `PREFIX_*` patterns. */
export function envNameAllowed(name: string, allow: readonly string[]): boolean {
  for (const a of allow) {
    if (a.endsWith('*') ? name.startsWith(a.slice(0, -1)) : name === a) return true;
  }
  return false;
}
