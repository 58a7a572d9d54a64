/**
 * Runner pidfiles: `<dataDir>/runners/<instance-id>.json`, written right after spawn, removed on reap.
 * They let a restarted supervisor find and kill runners a crashed one left behind (sweepStaleRunners).
 * Each records the runner's pid, pgid and /proc starttime (so a reused pid is never killed), its marker
 * env entry, and the owning supervisor's pid and starttime (so a live supervisor's runners are left alone).
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../observability/logger.js';
import { isAlive, killTree, readProcStat, type TreeIdentity } from './proc-tree.js';

export interface RunnerPidfile extends TreeIdentity {
  id: string;
  name: string;
  supervisorPid: number;
  supervisorStarttime: number;
  startedAtMs: number;
}

export function pidfileDir(dataDir: string): string {
  return join(dataDir, 'runners');
}

export function pidfilePath(dataDir: string, id: string): string {
  return join(pidfileDir(dataDir), `${id}.json`);
}

export function selfStarttime(): number {
  return readProcStat(process.pid)?.starttime ?? 0;
}

export function writePidfile(dataDir: string, rec: RunnerPidfile): void {
  mkdirSync(pidfileDir(dataDir), { recursive: true, mode: 0o700 });
  const path = pidfilePath(dataDir, rec.id);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(rec) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}

export function removePidfile(dataDir: string, id: string): void {
  rmSync(pidfilePath(dataDir, id), { force: true });
}

function parsePidfile(raw: string): RunnerPidfile | undefined {
  try {
    const r = JSON.parse(raw) as Partial<RunnerPidfile>;
    const ints = [r.pid, r.pgid, r.starttime, r.supervisorPid, r.supervisorStarttime];
    if (!ints.every((n) => Number.isSafeInteger(n) && (n as number) > 0)) return undefined;
    if (typeof r.id !== 'string' || (r.marker !== undefined && typeof r.marker !== 'string')) return undefined;
    return r as RunnerPidfile;
  } catch {
    return undefined;
  }
}

/**
 * Kills the trees recorded by pidfiles whose supervisor is gone, and removes those pidfiles. Pidfiles of
 * a live supervisor (this one included) are left untouched, so every RunnerManager may call this at
 * start. Returns the ids swept.
 */
export async function sweepStaleRunners(dataDir: string, logger: Logger): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(pidfileDir(dataDir));
  } catch {
    return [];
  }
  const swept: string[] = [];
  for (const name of names) {
    if (!name.endsWith('.json')) continue;
    const path = join(pidfileDir(dataDir), name);
    let raw: string;
    try {
      raw = readFileSync(path, 'utf8');
    } catch {
      continue;
    }
    const rec = parsePidfile(raw);
    if (!rec) {
      logger.warn({ file: name }, 'unreadable runner pidfile removed');
      rmSync(path, { force: true });
      continue;
    }
    if (isAlive(rec.supervisorPid, rec.supervisorStarttime)) continue;
    const killed = await killTree(rec);
    rmSync(path, { force: true });
    swept.push(rec.id);
    logger.warn({ runnerId: rec.id, killed: killed.length }, 'swept runner left by a previous supervisor');
  }
  return swept;
}
