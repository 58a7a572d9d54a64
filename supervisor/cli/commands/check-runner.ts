import { checkRunner, formatCheckResults } from '../../runners/conformance/check-runner.js';
import { pythonRunnerCommand, runnerHostCommand } from '../../runners/runner-command.js';
import { whichSync } from '../../runners/resolve-runner.js';
import { EXIT_FAIL, EXIT_OK, parseFlags, UsageError, writeJson, type CliCommand } from '../command.js';

export const checkRunnerCommand: CliCommand = {
  name: 'check-runner',
  summary: 'run the runner-protocol conformance suite against any runner command',
  usage: `usage: check-runner [--json] [--env K=V]... [--timeout-ms N] -- <command> [args...]
       check-runner --builtin <mock|python|http|llama_cpp|vllm> [--env K=V]...

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
    const results = await checkRunner(command, { env, cwd: io.cwd, ...(timeoutMs ? { timeoutMs } : {}) });
    const ok = results.every((r) => r.ok);
    if (values.json) writeJson(io, { ok, command, checks: results });
    else io.stdout(formatCheckResults(results) + `\n${ok ? 'PASS' : 'FAIL'}: ${results.filter((r) => r.ok).length}/${results.length} checks\n`);
    return ok ? EXIT_OK : EXIT_FAIL;
  },
};
