/** Shared helpers for the runner tests: real fixture processes, a capturing logger, /proc scans. */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configFrom } from '../../supervisor/config/load-config.js';
import type { EnvName } from '../../supervisor/config/env-spec.js';
import { createLogger, type Logger } from '../../supervisor/observability/logger.js';
import { RunnerManager, type RunnerManagerOptions, type RunnerState } from '../../supervisor/runners/runner-manager.js';
import { UnsandboxedLauncher } from '../../supervisor/runners/unsandboxed-launcher.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures', 'runners');

export function fixture(name: string): string[] {
  return [process.execPath, join(FIXTURES, `${name}.mjs`)];
}

/** Test defaults: fast probes and restarts, generous start deadline for a loaded machine. */
export const FAST: Partial<Record<EnvName, string>> = {
  NODE_RUNNER_START_TIMEOUT_MS: '15000',
  NODE_RUNNER_HEALTH_INTERVAL_MS: '200',
  NODE_RUNNER_HEALTH_TIMEOUT_MS: '2000',
  NODE_RUNNER_HEALTH_MISSES: '2',
  NODE_RUNNER_RESTART_BASE_MS: '10',
  NODE_RUNNER_RESTART_MAX_MS: '50',
  NODE_RUNNER_KILL_GRACE_MS: '500',
  NODE_RUNNER_TIMEOUT_MS: '20000',
  NODE_DRAIN_TIMEOUT_MS: '10000',
  NODE_QUEUE_MAX: '4',
};

export interface Captured {
  logger: Logger;
  lines: string[];
  text(): string;
}

export function captureLogger(): Captured {
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(s) } });
  return { logger, lines, text: () => lines.join('') };
}

export interface Harness {
  manager: RunnerManager;
  marker: string;
  dataDir: string;
  log: Captured;
  cleanup(): Promise<void>;
}

export function makeManager(
  command: string[],
  opts: { config?: Partial<Record<EnvName, string>>; env?: Record<string, string>; policy?: RunnerManagerOptions['policy']; name?: string; adapter?: string } = {},
): Harness {
  const marker = randomUUID();
  const dataDir = mkdtempSync(join(tmpdir(), 'fedai-runners-'));
  const log = captureLogger();
  const manager = new RunnerManager({
    name: opts.name ?? 'fixture',
    adapter: opts.adapter ?? 'mock',
    command,
    config: configFrom({ ...FAST, ...(opts.config ?? {}) }),
    logger: log.logger,
    launcher: new UnsandboxedLauncher(),
    dataDir,
    env: { FEDAI_TEST_MARKER: marker, ...(opts.env ?? {}) },
    policy: { giveUpMs: 60_000, ...(opts.policy ?? {}) },
  });
  return {
    manager,
    marker,
    dataDir,
    log,
    async cleanup() {
      await manager.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function procState(pid: string): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** Live (non-zombie) processes whose environ carries FEDAI_TEST_MARKER=<marker> or whose argv mentions it. */
export function processesWithMarker(marker: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    let env = '';
    let cmd = '';
    try {
      env = readFileSync(`/proc/${pid}/environ`, 'latin1');
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      continue;
    }
    if (!env.split('\0').includes(`FEDAI_TEST_MARKER=${marker}`) && !cmd.includes(marker)) continue;
    const st = procState(pid);
    if (st !== undefined && st !== 'Z' && st !== 'X') out.push(Number(pid));
  }
  return out;
}

/** Live parent-death sentinels started from this (jest worker) process. */
export function sentinelsOfThisProcess(): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      continue;
    }
    if (!cmd.includes('fedai-runner-sentinel') || !cmd.includes(`-${process.pid}-`)) continue;
    const st = procState(pid);
    if (st !== undefined && st !== 'Z' && st !== 'X') out.push(Number(pid));
  }
  return out;
}

export function isLive(pid: number): boolean {
  const st = procState(String(pid));
  return st !== undefined && st !== 'Z' && st !== 'X';
}

export async function waitFor(pred: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function waitForState(m: RunnerManager, state: RunnerState, timeoutMs = 20_000): Promise<void> {
  return waitFor(() => m.state === state, timeoutMs, `state ${state} (now ${m.state})`);
}

export const REQ = { requestId: 'r-1', modelId: 'fixture-model', prompt: 'PROMPT-SECRET-TEXT', maxTokens: 16 };

export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return (e as { code?: string }).code ?? 'no-code';
  }
}
