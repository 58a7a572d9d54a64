/**
 * The composition root: builds every part of a node from its configuration, starts them in order and
 * stops them in reverse. `fedai-node serve` (and so `npm start`) is a thin shell around FedaiNode.
 */
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Config } from './config/load-config.js';
import { resolveIdentity, type ResolvedIdentity } from './config/identity.js';
import { createApp } from './http/app.js';
import { Capacity } from './http/infer/capacity.js';
import { InferService } from './http/infer/infer-service.js';
import { NonceStore } from './replay/nonce-store.js';
import { CryptoPool } from './crypto/crypto-pool.js';
import { loadNativeSchnorr, schnorrBackend, useSchnorrBackend } from './crypto/schnorr.js';
import { MeteringSpool } from './metering/metering-spool.js';
import { NodeMetrics } from './observability/metrics.js';
import { inferSpan, startTracing, type Tracing } from './observability/tracing.js';
import { PaymentGate } from './payments/payment-gate.js';
import { createLauncher } from './sandbox/select-launcher.js';
import type { Launcher } from './sandbox/launch-plan.js';
import { RunnerManager } from './runners/runner-manager.js';
import { resolveRunnerCommand } from './runners/resolve-runner.js';
import { Heartbeat } from './heartbeat/heartbeat.js';
import { discoverRelays, relayOptionsFromConfig } from './relay/relay-discovery.js';

export const NODE_VERSION = '0.1.0';

export interface NodeOptions {
  config: Config;
  logger: Logger;
  /** Tests: wait until the runner is ready (or failed) before resolving. */
  waitForRunner?: boolean;
  /** Tests: capture spans in memory. */
  spanExporter?: SpanExporter;
  /** Tests/tools: a different runner program than NODE_RUNNER selects. */
  runnerCommand?: string[];
  /** Tests/tools: extra variables for the runner's environment (on top of the allowlist). */
  runnerEnv?: Record<string, string>;
}

export class FedaiNode {
  private server?: Server;
  private accepting = true;
  private readonly startedAt = Date.now();
  private stopping?: Promise<void>;

  private constructor(
    readonly config: Config,
    readonly logger: Logger,
    readonly identity: ResolvedIdentity,
    readonly dataDir: string,
    readonly metrics: NodeMetrics,
    private readonly tracing: Tracing,
    private readonly nonces: NonceStore,
    private readonly spool: MeteringSpool,
    private readonly payments: PaymentGate | null,
    readonly launcher: Launcher,
    readonly runner: RunnerManager,
    private readonly capacity: Capacity,
    private readonly heartbeat: Heartbeat,
    private readonly crypto: CryptoPool,
  ) {}

  static async start(opts: NodeOptions): Promise<FedaiNode> {
    const { config, logger } = opts;
    const dataDir = path.resolve(config.NODE_DATA_DIR);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    // The signature backend first: NODE_SCHNORR_BACKEND=native without the native build stops here.
    const schnorr = useSchnorrBackend(config.NODE_SCHNORR_BACKEND);
    if (schnorr.name === 'wasm' && config.NODE_SCHNORR_BACKEND === 'auto') {
      const native = loadNativeSchnorr();
      logger.warn({ reason: 'error' in native ? native.error : undefined }, 'signatures use the WebAssembly libsecp256k1 (~4x slower than the native build)');
    }
    const identity = resolveIdentity(config, dataDir);
    for (const f of identity.created) logger.info({ file: f }, 'created development key');

    const metrics = new NodeMetrics({ defaultMetrics: config.NODE_ENV !== 'test' });
    const tracing = await startTracing({ config, logger, ...(opts.spanExporter ? { exporter: opts.spanExporter } : {}) });
    const nonces = NonceStore.open({
      dir: path.join(dataDir, 'nonces'),
      windowMs: config.NODE_REPLAY_WINDOW_MS,
      maxEntries: config.NODE_NONCE_STORE_MAX,
      logger,
    });
    const spool = await MeteringSpool.open({ dir: path.join(dataDir, 'metering'), rotateBytes: config.NODE_METERING_ROTATE_BYTES, logger });
    const payments = config.NODE_REQUIRE_PAYMENT
      ? await PaymentGate.open({
          config,
          node: { nodeId: config.NODE_ID, identity: identity.node },
          dataDir,
          logger,
          onFailure: (reason) => metrics.paymentFailure(reason),
        })
      : null;

    const launcher = await createLauncher(config, logger, { dataDir, metrics: { egressRefusal: (r: string) => metrics.egressRefusal(r) } });
    await launcher.init?.();
    const runnerSpec = resolveRunnerCommand(config, opts.runnerCommand);
    const runner = new RunnerManager({
      name: runnerSpec.name,
      adapter: runnerSpec.adapter,
      command: runnerSpec.command,
      codeDirs: runnerSpec.codeDirs,
      needsEgress: runnerSpec.needsEgress,
      config,
      logger,
      launcher,
      dataDir,
      ...(opts.runnerEnv ? { env: opts.runnerEnv } : {}),
    });
    const capacity = new Capacity(config.NODE_CAPACITY_MAX, config.NODE_CAPACITY_LOAD, (n) => metrics.setInflight(n));
    let boundPort: number | undefined;
    const heartbeat: Heartbeat = new Heartbeat({
      config,
      identity: identity.node,
      logger,
      snapshot: () => ({ models: runner.listModels(), inFlight: capacity.current }),
      listenPort: (): number | undefined => boundPort,
      metrics: { heartbeat: (ok: boolean) => metrics.heartbeat(ok) },
    });
    runner.on('state', (state: string) => {
      metrics.runnerState(runner.name, state);
      heartbeat.trigger();
    });
    runner.on('restart', (reason: string) => metrics.runnerRestart(runner.name, reason));
    runner.on('kill', (reason: string) => metrics.runnerKill(runner.name, reason));

    // Under load the event loop is the bottleneck: one worker takes the signatures off it (native: one
    // is enough, and a second only adds wake-ups); a lone request still signs inline (CryptoPool).
    const crypto = new CryptoPool(config.NODE_CRYPTO_WORKERS ?? (schnorr.name === 'native' ? 1 : 2));
    crypto.setConcurrencyHint(() => capacity.current);
    const node = new FedaiNode(config, logger, identity, dataDir, metrics, tracing, nonces, spool, payments, launcher, runner, capacity, heartbeat, crypto);
    const service = new InferService({
      config,
      identity,
      nodeId: config.NODE_ID,
      replay: nonces,
      runner,
      payments,
      spool,
      metrics,
      capacity,
      logger,
      ...(crypto.size > 0 ? { crypto } : {}),
    });
    const app = createApp({
      config,
      logger,
      service,
      metrics,
      status: () => node.status(),
      ready: () => runner.ready,
      accepting: () => node.accepting,
      traced: (route, fn) => inferSpan(tracing, route, fn),
    });
    node.server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 66_000, requestTimeout: 0 }, app);
    await new Promise<void>((resolve, reject) => {
      node.server!.once('error', reject);
      node.server!.listen(config.NODE_PORT, config.NODE_HOST, () => {
        node.server!.off('error', reject);
        resolve();
      });
    });
    const addr = node.server.address();
    boundPort = addr && typeof addr === 'object' ? addr.port : undefined;
    logger.info({ url: node.url, npub: identity.node.npub, nodeId: config.NODE_ID, sandbox: launcher.mode, runner: runner.name, schnorr: schnorr.detail }, 'node listening');

    const runnerStarted = runner.start().catch((err) => logger.error({ err }, 'runner start failed'));
    if (opts.waitForRunner) await runnerStarted;
    heartbeat.start();
    void node.discoverRelays();
    return node;
  }

  get url(): string {
    const addr = this.server?.address() as AddressInfo | null;
    const host = !addr ? this.config.NODE_HOST : addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `http://${host}:${addr?.port ?? this.config.NODE_PORT}`;
  }

  status(): Record<string, unknown> {
    return {
      ok: true,
      ready: this.runner.ready && this.accepting,
      version: NODE_VERSION,
      nodeId: this.config.NODE_ID,
      npub: this.identity.node.npub,
      uptimeMs: Date.now() - this.startedAt,
      runner: this.runner.status(),
      inFlight: this.capacity.current,
      capacity: { maxConcurrent: this.capacity.maxConcurrent, currentLoad: this.capacity.load },
      payments: {
        requirePayment: this.config.NODE_REQUIRE_PAYMENT,
        lightningBackend: this.config.NODE_LN_BACKEND,
        verificationEnabled: this.config.NODE_LN_BACKEND !== 'none' || this.config.NODE_LN_VERIFY_URL !== undefined,
      },
      sandbox: { mode: this.launcher.mode },
      crypto: { schnorr: schnorrBackend().name, workers: this.crypto.liveWorkers },
      tracing: this.tracing.enabled,
    };
  }

  private async discoverRelays(): Promise<void> {
    try {
      const relays = await discoverRelays(relayOptionsFromConfig(this.config));
      this.logger.info({ count: relays.length, top: relays.slice(0, 3).map((r) => r.url) }, 'relays discovered');
    } catch (err) {
      this.logger.warn({ err }, 'relay discovery failed');
    }
  }

  /** Graceful stop: refuse new work, drain in-flight requests, stop the runner, close stores. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.accepting = false;
    const deadline = Date.now() + this.config.NODE_DRAIN_TIMEOUT_MS;
    while (this.capacity.current > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    if (this.capacity.current > 0) this.logger.warn({ inFlight: this.capacity.current }, 'drain deadline passed; stopping anyway');
    await this.heartbeat.stop();
    await this.runner.stop();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.launcher.close?.();
    await this.payments?.close();
    await this.spool.close();
    await this.nonces.close();
    await this.tracing.shutdown();
    await this.crypto.close();
    this.logger.info('node stopped');
  }
}

