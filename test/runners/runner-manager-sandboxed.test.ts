/**
 * The manager is launcher-agnostic: the same lifecycle under the layered sandbox (profile `dev`,
 * selected by createLauncher exactly as the node does), with no process left behind.
 */
import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFrom } from '../../supervisor/config/load-config.js';
import { createLauncher } from '../../supervisor/sandbox/select-launcher.js';
import { PACKAGE_ROOT, runnerHostCommand } from '../../supervisor/runners/runner-command.js';
import { RunnerManager } from '../../supervisor/runners/runner-manager.js';
import { captureLogger, FAST, processesWithMarker, waitFor } from './helpers.js';

describe('RunnerManager under the dev sandbox profile', () => {
  it('starts the mock, infers, streams, stops, and leaves nothing behind', async () => {
    const config = configFrom({ ...FAST, NODE_SANDBOX_MODE: 'dev' });
    const log = captureLogger();
    const dataDir = mkdtempSync(join(tmpdir(), 'fedai-sbx-'));
    const marker = randomUUID();
    const launcher = await createLauncher(config, log.logger, { dataDir });
    await launcher.init?.();
    const m = new RunnerManager({ name: 'mock', adapter: 'mock', command: runnerHostCommand(), codeDirs: [PACKAGE_ROOT], config, logger: log.logger, launcher, dataDir, env: { FEDAI_TEST_MARKER: marker } });
    try {
      await m.start();
      expect(m.status()).toMatchObject({ state: 'ready', restarts: 0 });
      expect(processesWithMarker(marker).length).toBeGreaterThanOrEqual(1); // the scan below is not vacuous
      const chunks: string[] = [];
      const r = await m.infer({ requestId: 's-1', modelId: 'mock-model', prompt: 'PROMPT-SECRET-TEXT', maxTokens: 8 }, { stream: true, onChunk: (c) => chunks.push(c.delta) });
      expect(chunks.join('')).toBe(r.output);
      expect(log.text()).not.toContain('PROMPT-SECRET-TEXT');
    } finally {
      await m.stop();
      await launcher.close?.();
      rmSync(dataDir, { recursive: true, force: true });
    }
    expect(m.state).toBe('stopped');
    await waitFor(() => processesWithMarker(marker).length === 0, 5000, 'no leftover runner processes');
  }, 40_000);
});
