import { ConfigError, loadConfig, unknownVariables } from '../../config/load-config.js';
import { createLogger } from '../../observability/logger.js';
import { FedaiNode } from '../../node.js';
import { EXIT_FAIL, EXIT_OK, parseFlags, type CliCommand, type CliIO } from '../command.js';

export const serveCommand: CliCommand = {
  name: 'serve',
  summary: 'run the node (default command)',
  usage: `usage: serve

Runs the node with the configuration from the environment (see README: Configuration). Logs are JSON
lines on stdout. SIGTERM or SIGINT stops it gracefully: new requests are refused, in-flight ones drain
(NODE_DRAIN_TIMEOUT_MS), the runner is shut down, stores are flushed. Exit 1 on invalid configuration.`,
  async run(args, io) {
    parseFlags(args, {});
    let config;
    try {
      config = loadConfig(io.env);
    } catch (err) {
      if (err instanceof ConfigError) {
        io.stderr(`fedai-node: ${err.message}\n`);
        return EXIT_FAIL;
      }
      throw err;
    }
    const logger = createLogger({ level: config.LOG_LEVEL });
    for (const name of unknownVariables(io.env)) logger.warn({ variable: name }, 'unknown configuration variable ignored (a typo?)');
    let node: FedaiNode;
    try {
      node = await FedaiNode.start({ config, logger });
    } catch (err) {
      if (err instanceof ConfigError) {
        io.stderr(`fedai-node: ${err.message}\n`);
        return EXIT_FAIL;
      }
      logger.fatal({ err }, 'start-up failed');
      logger.flush?.();
      return EXIT_FAIL;
    }
    printBanner(node, io);
    await waitForStopSignal(io);
    await node.stop();
    logger.flush?.();
    return EXIT_OK;
  },
};

function printBanner(node: FedaiNode, io: CliIO): void {
  const lines = [`fedai-node ${node.config.NODE_ID} listening on ${node.url}`, `  node key (npub): ${node.identity.node.npub}`, `  sandbox: ${node.launcher.mode}, runner: ${node.runner.name}`];
  if (node.identity.devRouter) {
    const dataDirFlag = node.config.NODE_DATA_DIR === './.fedai' ? '' : ` --data-dir ${node.config.NODE_DATA_DIR}`;
    lines.push(
      '',
      'Development mode: a dev router key is trusted. A full signed round trip:',
      `  npm run fedai -- infer --node ${node.url}${dataDirFlag} --prompt "Hello, fed_AI"`,
      `  npm run fedai -- infer --node ${node.url}${dataDirFlag} --prompt "Hello, fed_AI" --stream`,
    );
  }
  io.stderr(lines.join('\n') + '\n\n');
}

function waitForStopSignal(io: CliIO): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    io.signal?.addEventListener('abort', done, { once: true });
  });
}
