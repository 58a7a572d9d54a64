/**
 * Shared helpers for the sandbox tests: whether this host has the layers the real tests need, and a
 * describe() that skips with an explicit reason — or FAILS when FEDAI_REQUIRE_SANDBOX=1 (CI).
 */
import { describe, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../supervisor/observability/logger.js';
import { findBinary } from '../../supervisor/sandbox/host-layers.js';
import { detectCgroupDriver } from '../../supervisor/sandbox/cgroups.js';

export const REQUIRE_SANDBOX = process.env.FEDAI_REQUIRE_SANDBOX === '1';

function computeSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return `not root (uid ${process.getuid?.()}): uid switching and cgroups need root`;
  const bwrap = findBinary('bwrap');
  if (!bwrap) return 'bwrap missing: apt-get install bubblewrap';
  const setpriv = findBinary('setpriv');
  if (!setpriv) return 'setpriv missing: apt-get install util-linux';
  if (!findBinary('prlimit')) return 'prlimit missing: apt-get install util-linux';
  const cg = detectCgroupDriver();
  if (cg.kind === 'none') return `no writable cgroup hierarchy (${cg.detail})`;
  const r = spawnSync(setpriv, ['--reuid=61999', '--regid=61999', '--clear-groups', '--inh-caps=-all', bwrap, '--unshare-all', '--ro-bind', '/', '/', '--', '/bin/true'], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) return `unprivileged user namespaces do not work: ${(r.stderr || String(r.error)).trim().slice(0, 200)}`;
  return undefined;
}

export const SANDBOX_SKIP_REASON = computeSkipReason();
export const cgroupKind = (): string => detectCgroupDriver().kind;

/** describe() for tests that need real sandbox layers. */
export function describeSandbox(name: string, fn: () => void): void {
  if (!SANDBOX_SKIP_REASON) describe(name, fn);
  else if (REQUIRE_SANDBOX) {
    describe(name, () => {
      test('sandbox layers are present (FEDAI_REQUIRE_SANDBOX=1)', () => {
        throw new Error(`FEDAI_REQUIRE_SANDBOX=1 but this host cannot run sandbox tests: ${SANDBOX_SKIP_REASON}`);
      });
    });
  } else describe.skip(`${name} [skipped: ${SANDBOX_SKIP_REASON}]`, fn);
}

/** A real pino logger whose JSON lines are kept for assertions. */
export function captureLogger(level = 'debug'): { logger: Logger; lines: () => Array<Record<string, unknown>> } {
  const out: string[] = [];
  const dest = new Writable({
    write(chunk, _enc, cb) {
      out.push(chunk.toString());
      cb();
    },
  });
  const logger = createLogger({ level, destination: dest as never });
  return {
    logger,
    lines: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Profiles whose hostile-runner run lives in hostile-gpu.test.ts (the rest in hostile.test.ts). */
export const HOSTILE_GPU_FILE_PROFILES: readonly string[] = ['gpu'];
