/**
 * Turns NODE_RUNNER into the runner to spawn: a built-in adapter served by runner-host, or (exec) any
 * program in any language given by NODE_RUNNER_EXEC. The argv[0] of an external program is resolved
 * to an absolute path (sandbox launchers need one).
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/load-config.js';
import { ConfigError } from '../config/load-config.js';
import { PACKAGE_ROOT, runnerHostCommand } from './runner-command.js';

export interface ResolvedRunner {
  /** Name checked against NODE_SANDBOX_ALLOWED_RUNNERS and used in metrics. */
  name: string;
  /** FEDAI_ADAPTER for runner-host ('exec' for external programs). */
  adapter: string;
  command: string[];
  codeDirs: string[];
  needsEgress: boolean;
}

export function splitCommandLine(text: string): string[] {
  const t = text.trim();
  if (t.startsWith('[')) {
    const arr = JSON.parse(t) as unknown;
    if (!Array.isArray(arr) || arr.length === 0 || !arr.every((x) => typeof x === 'string')) {
      throw new ConfigError(['NODE_RUNNER_EXEC: a JSON command line must be a non-empty array of strings']);
    }
    return arr as string[];
  }
  return t.split(/\s+/).filter(Boolean);
}

export function whichSync(file: string, pathEnv = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin'): string | undefined {
  if (file.includes('/')) return path.resolve(file);
  for (const dir of pathEnv.split(':')) {
    if (!dir) continue;
    const candidate = path.join(dir, file);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export function resolveRunnerCommand(config: Config, override?: string[]): ResolvedRunner {
  if (override) {
    return { name: config.NODE_RUNNER, adapter: config.NODE_RUNNER, command: override, codeDirs: [PACKAGE_ROOT], needsEgress: false };
  }
  if (config.NODE_RUNNER === 'exec') {
    let argv: string[];
    try {
      argv = splitCommandLine(config.NODE_RUNNER_EXEC ?? '');
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError([`NODE_RUNNER_EXEC: ${(err as Error).message}`]);
    }
    const exe = whichSync(argv[0] ?? '');
    if (!exe) throw new ConfigError([`NODE_RUNNER_EXEC: program "${argv[0]}" not found on PATH`]);
    const scriptDirs = argv.slice(1).filter((a) => a.startsWith('/') || a.endsWith('.py') || a.endsWith('.js')).map((a) => path.dirname(path.resolve(a)));
    // An external runner gets the same backend settings a built-in one would (NODE_RUNNER_URL, key).
    return {
      name: 'exec',
      adapter: 'exec',
      command: [exe, ...argv.slice(1)],
      codeDirs: [...new Set(scriptDirs)],
      needsEgress: config.NODE_RUNNER_URL !== undefined,
    };
  }
  return {
    name: config.NODE_RUNNER,
    adapter: config.NODE_RUNNER,
    command: runnerHostCommand(),
    codeDirs: [PACKAGE_ROOT],
    needsEgress: config.NODE_RUNNER !== 'mock' && config.NODE_RUNNER_COMMAND === undefined,
  };
}
