/**
 * Spawn-to-ready: time from spawn to the first JSON-RPC response (`initialize`) of a runner started
 * through a Launcher. For the benchmark author: `measureSpawnToReadyForProfile('strict', { runs: 10 })`
 * starts the built-in mock runner host under the shipped `strict` profile (needs root, bwrap and
 * cgroups, like production) and returns one figure per run; 'disabled' gives the unsandboxed baseline.
 */
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Launcher, LayerReport, RunnerSpec } from './launch-plan.js';
import { spawnPlan } from './spawn-plan.js';
import { SandboxLauncher } from './sandbox-launcher.js';
import { loadProfile, packageRoot } from './profiles.js';
import { UnsandboxedLauncher } from '../runners/unsandboxed-launcher.js';
import { runnerHostCommand } from '../runners/runner-command.js';
import { RUNNER_PROTOCOL_VERSION } from '../protocol/runner-protocol.js';

export interface SpawnToReady {
  /** ms from spawn() to the parsed `initialize` response. */
  readonly ms: number;
  readonly result: unknown;
  readonly layers: readonly LayerReport[];
}

function frame(obj: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(obj), 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]);
}

/** Starts `spec` through `launcher`, sends `initialize`, waits for its response, then kills and disposes. */
export async function measureSpawnToReady(opts: { launcher: Launcher; spec: RunnerSpec; timeoutMs?: number }): Promise<SpawnToReady> {
  const plan = await opts.launcher.prepare(opts.spec);
  let stderr = '';
  try {
    const t0 = process.hrtime.bigint();
    const child = spawnPlan(plan);
    plan.attach(child.pid!, () => undefined);
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 2000) stderr += d.toString();
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.write(
      frame({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: RUNNER_PROTOCOL_VERSION, supervisor: { name: 'fedai-node', version: '0.1.0' }, runnerId: opts.spec.id },
      }),
    );
    const result = await new Promise<unknown>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => reject(new Error(`no initialize response within ${opts.timeoutMs ?? 20000} ms: ${stderr.slice(-300)}`)), opts.timeoutMs ?? 20000);
      child.on('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`runner exited (${sig ?? code}) before answering: ${stderr.slice(-300)}`));
      });
      child.stdout!.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const sep = buf.indexOf('\r\n\r\n');
          if (sep < 0) return;
          const m = /Content-Length:\s*(\d+)/i.exec(buf.subarray(0, sep).toString('ascii'));
          if (!m) return reject(new Error('runner broke the framing'));
          const end = sep + 4 + Number(m[1]);
          if (buf.length < end) return;
          const msg = JSON.parse(buf.subarray(sep + 4, end).toString('utf8')) as { id?: unknown; result?: unknown; error?: unknown };
          buf = buf.subarray(end);
          if (msg.id !== 1) continue; // a notification (log) before the response
          clearTimeout(timer);
          if (msg.error) reject(new Error(`initialize failed: ${JSON.stringify(msg.error)}`));
          else resolve(msg.result);
          return;
        }
      });
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    child.removeAllListeners('exit');
    await plan.killTree();
    return { ms, result, layers: plan.layers };
  } finally {
    await plan.dispose();
  }
}

/** `runs` spawn-to-ready figures for the built-in mock runner under a shipped profile (or 'disabled'). */
export async function measureSpawnToReadyForProfile(
  profile: string,
  opts: { runs?: number; logger: Logger; command?: string[]; codeDirs?: string[] },
): Promise<number[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'fedai-bench-data-'));
  const launcher: Launcher =
    profile === 'disabled'
      ? new UnsandboxedLauncher({ sentinel: false })
      : new SandboxLauncher({ logger: opts.logger, profile: loadProfile(profile), dataDir });
  await launcher.init?.();
  const out: number[] = [];
  try {
    for (let i = 0; i < (opts.runs ?? 5); i++) {
      const work = mkdtempSync(join(tmpdir(), 'fedai-bench-work-'));
      chmodSync(work, 0o755);
      try {
        const r = await measureSpawnToReady({
          launcher,
          spec: {
            id: `bench-${i}`,
            name: 'mock',
            command: opts.command ?? runnerHostCommand(),
            env: { FEDAI_ADAPTER: 'mock', FEDAI_RUNNER_ID: `bench-${i}` },
            codeDirs: opts.codeDirs ?? [packageRoot()],
            workDir: work,
            needsEgress: false,
          },
        });
        out.push(r.ms);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    }
  } finally {
    await launcher.close?.();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return out;
}
