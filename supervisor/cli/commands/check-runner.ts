import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { checkRunner, formatCheckResults, type CheckResult } from '../../runners/conformance/check-runner.js';
import { PACKAGE_ROOT, pythonRunnerCommand, runnerHostCommand } from '../../runners/runner-command.js';
import { ConfigError, loadConfig } from '../../config/load-config.js';
import { createLogger } from '../../observability/logger.js';
import { createLauncher } from '../../sandbox/select-launcher.js';
import { whichSync } from '../../runners/resolve-runner.js';
import { EXIT_FAIL, EXIT_OK, parseFlags, UsageError, writeJson, type CliCommand } from '../command.js';

export const checkRunnerCommand: CliCommand = {
  name: 'check-runner',
  summary: 'run the runner-protocol conformance suite against any runner command',
  usage: `usage: check-runner [--json] [--env K=V]... [--timeout-ms N] [--profile <name>] -- <command> [args...]
       check-runner --builtin <mock|python|http|llama_cpp|vllm> [--env K=V]... [--profile <name>]

--profile runs the runner inside that sandbox profile (e.g. strict), exactly as the node would launch it.

Starts the runner, runs the conformance checks (handshake, every method, streaming order,
cancellation, errors for bad params, exit on stdin close, no stdout noise) and prints one line per
check. Exit 0 when every check passes, 1 otherwise. The runner gets only PATH and the --env values.
Example: fedai-node check-runner -- python3 runner-host/examples/python/fedai_runner.py`,
  async run(args, io) {
    const dd = args.indexOf('--');
    const own = dd >= 0 ? args.slice(0, dd) : args;
    const { values } = parseFlags(own, {
      json: { type: 'boolean' },
      env: { type: 'string', multiple: true },
      builtin: { type: 'string' },
      'timeout-ms': { type: 'string' },
      profile: { type: 'string' },
    });
    const env: Record<string, string> = {};
    for (const kv of values.env ?? []) {
      const i = kv.indexOf('=');
      if (i <= 0) throw new UsageError(`--env expects K=V, got "${kv}"`);
      env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    let command: string[];
    if (values.builtin !== undefined) {
      if (dd >= 0) throw new UsageError('give --builtin or a command after --, not both');
      if (values.builtin === 'python') command = pythonRunnerCommand();
      else if (['mock', 'http', 'llama_cpp', 'vllm'].includes(values.builtin)) {
        command = runnerHostCommand();
        env.FEDAI_ADAPTER = values.builtin;
      } else throw new UsageError(`unknown builtin runner "${values.builtin}"`);
    } else {
      command = dd >= 0 ? args.slice(dd + 1) : [];
      if (command.length === 0) throw new UsageError('give the runner command after --');
      const exe = whichSync(command[0]!, io.env.PATH);
      if (!exe) throw new UsageError(`program "${command[0]}" not found`);
      command = [exe, ...command.slice(1)];
    }
    const timeoutMs = values['timeout-ms'] !== undefined ? Number(values['timeout-ms']) : undefined;
    const results =
      values.profile !== undefined
        ? await checkInSandbox(values.profile, command, env, io, timeoutMs, values.builtin === 'python' || values.builtin === undefined ? 'exec' : values.builtin)
        : await checkRunner(command, { env, cwd: io.cwd, ...(timeoutMs ? { timeoutMs } : {}) });
    const ok = results.every((r) => r.ok);
    if (values.json) writeJson(io, { ok, command, checks: results });
    else io.stdout(formatCheckResults(results) + `\n${ok ? 'PASS' : 'FAIL'}: ${results.filter((r) => r.ok).length}/${results.length} checks\n`);
    return ok ? EXIT_OK : EXIT_FAIL;
  },
};

/** Runs the conformance suite against the runner as launched under a sandbox profile. */
async function checkInSandbox(
  profile: string,
  command: string[],
  env: Record<string, string>,
  io: { env: NodeJS.ProcessEnv; cwd: string },
  timeoutMs: number | undefined,
  runnerName: string,
): Promise<CheckResult[]> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fedai-check-runner-'));
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'fedai-check-runner-work-'));
  chmodSync(workDir, 0o755);
  let config;
  try {
    config = loadConfig({ ...io.env, NODE_SANDBOX_MODE: profile, NODE_DATA_DIR: dataDir, LOG_LEVEL: io.env.LOG_LEVEL ?? 'warn' });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.problems.join('; '));
    throw err;
  }
  const launcher = await createLauncher(config, createLogger({ level: config.LOG_LEVEL }), { dataDir });
  try {
    await launcher.init?.();
    const codeDirs = [...new Set([PACKAGE_ROOT, ...command.slice(1).filter((a) => a.startsWith('/')).map((a) => path.dirname(a))])];
    const plan = await launcher.prepare({
      id: `check-runner-${randomBytes(4).toString('hex')}`,
      name: runnerName,
      command,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: workDir, LANG: 'C.UTF-8', TZ: 'UTC', ...env },
      codeDirs,
      workDir,
      needsEgress: false,
    });
    try {
      return await checkRunner([plan.file, ...plan.args], { env: { ...plan.env }, cwd: plan.cwd, ...(timeoutMs ? { timeoutMs } : {}) });
    } finally {
      await plan.dispose();
    }
  } finally {
    await launcher.close?.();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(workDir, { recursive: true, force: true });
  }
}
