/**
 * Picks the launcher for NODE_SANDBOX_MODE: `disabled` → the plain UnsandboxedLauncher (logged loudly
 * at warn); any profile name → SandboxLauncher with that profile (unset: `dev`, or `strict` when
 * NODE_ENV=production). A typo is an error listing the available profiles.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/load-config.js';
import type { Launcher } from './launch-plan.js';
import { loadProfile, resolveSandboxMode } from './profiles.js';
import { SandboxLauncher } from './sandbox-launcher.js';
import { UnsandboxedLauncher } from '../runners/unsandboxed-launcher.js';

export interface CreateLauncherOptions {
  dataDir: string;
  metrics?: { egressRefusal?(reason: string): void };
}

export async function createLauncher(config: Config, logger: Logger, opts: CreateLauncherOptions): Promise<Launcher> {
  const mode = resolveSandboxMode(config);
  if (mode === 'disabled') {
    logger.warn(
      { sandbox: 'disabled' },
      'SANDBOX DISABLED (NODE_SANDBOX_MODE=disabled): runners run as this user with its files, network and environment; only process-group and parent-death cleanup apply. Never do this on a production node.',
    );
    // Pass the logger too, for when the plain launcher learns to log; it ignores unknown options.
    return new UnsandboxedLauncher({ logger } as ConstructorParameters<typeof UnsandboxedLauncher>[0]);
  }
  const profile = loadProfile(mode, config.NODE_SANDBOX_PROFILE_DIR);
  logger.info({ profile: profile.name, require: profile.require }, `sandbox: profile ${profile.name}`);
  return new SandboxLauncher({
    logger,
    profile,
    dataDir: opts.dataDir,
    secretFiles: config.NODE_PRIVATE_KEY_FILE ? [config.NODE_PRIVATE_KEY_FILE] : [],
    allowedRunners: config.NODE_SANDBOX_ALLOWED_RUNNERS,
    allowedEndpoints: allowedEndpoints(config),
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
  });
}

/**
 * NODE_SANDBOX_ALLOWED_ENDPOINTS plus the backend URL the node itself is configured with
 * (NODE_RUNNER_URL, NODE_LLAMA_CPP_URL, NODE_VLLM_URL): a runner may always reach its own backend.
 */
export function allowedEndpoints(config: Config): string[] {
  const out = [...config.NODE_SANDBOX_ALLOWED_ENDPOINTS];
  for (const u of [config.NODE_RUNNER_URL, config.NODE_LLAMA_CPP_URL, config.NODE_VLLM_URL]) if (u && !out.includes(u)) out.push(u);
  return out;
}
