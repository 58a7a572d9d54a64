#!/usr/bin/env node
/** `fedai-node`: the operator CLI (serve, conformance and sandbox checks, metering verification). */
import { dispatch, processIO } from './dispatch.js';
import { serveCommand } from './commands/serve.js';
import { keygenCommand } from './commands/keygen.js';
import { checkRunnerCommand } from './commands/check-runner.js';
import { checkSandboxCommand } from './commands/check-sandbox.js';
import { meteringVerifyCommand } from './commands/metering-verify.js';

process.exitCode = await dispatch(
  'fedai-node',
  [serveCommand, checkRunnerCommand, checkSandboxCommand, meteringVerifyCommand, keygenCommand],
  process.argv.slice(2),
  processIO(),
  'serve',
);
