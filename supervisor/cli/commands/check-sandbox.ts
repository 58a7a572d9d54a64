import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { ConfigError, loadConfig } from '../../config/load-config.js';
import { createLogger } from '../../observability/logger.js';
import { checkSandbox, formatContainmentTable } from '../../sandbox/check-sandbox.js';
import { EXIT_FAIL, EXIT_OK, parseFlags, UsageError, writeJson, type CliCommand } from '../command.js';

export const checkSandboxCommand: CliCommand = {
  name: 'check-sandbox',
  summary: 'run the hostile-runner probes under a sandbox profile and print a containment table',
  usage: `usage: check-sandbox --profile <name> [--json]

Starts a deliberately hostile runner under the named profile (sandbox-profiles/ or
NODE_SANDBOX_PROFILE_DIR) on this host and reports, for each probe (read /etc/shadow, read the
supervisor's key, escape the work dir, reach the network, setuid, unshare, ptrace, fork bomb, memory
hog, CPU spin, hang, ...), whether it was contained. Exit 0 when everything is contained, 1 when
anything leaks or a layer the profile requires is missing. Run it as the user the node runs as.`,
  async run(args, io) {
    const { values } = parseFlags(args, { profile: { type: 'string' }, json: { type: 'boolean' } });
    if (!values.profile) throw new UsageError('--profile is required');
    let config;
    try {
      config = loadConfig({ ...io.env, NODE_SANDBOX_MODE: values.profile, LOG_LEVEL: io.env.LOG_LEVEL ?? 'warn' });
    } catch (err) {
      if (err instanceof ConfigError) {
        io.stderr(`check-sandbox: ${err.message}\n`);
        return EXIT_FAIL;
      }
      throw err;
    }
    const logger = createLogger({ level: config.LOG_LEVEL });
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fedai-check-sandbox-'));
    try {
      const result = await checkSandbox({ profile: values.profile, config, logger, dataDir });
      const leaks = result.probes.filter((p) => !p.contained);
      if (values.json) writeJson(io, { ok: leaks.length === 0, ...result });
      else io.stdout(formatContainmentTable(result) + `\n${leaks.length === 0 ? 'CONTAINED' : `LEAKS: ${leaks.map((p) => p.probe).join(', ')}`}\n`);
      return leaks.length === 0 ? EXIT_OK : EXIT_FAIL;
    } catch (err) {
      io.stderr(`check-sandbox: ${(err as Error).message}\n`);
      return EXIT_FAIL;
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
};
