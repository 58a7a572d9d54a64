/** RunnerProcess details through the manager: runner log notifications, a command that cannot start. */
import { afterEach, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { codeOf, fixture, makeManager, processesWithMarker, REQ, waitFor, type Harness } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  if (!h) return;
  const { marker } = h;
  await h.cleanup();
  h = undefined;
  await waitFor(() => processesWithMarker(marker).length === 0, 5000, 'no leftover runner processes');
});

describe('runner process', () => {
  it('log notifications reach the logger with level and numeric/boolean fields only; the text only as size and hash', async () => {
    h = makeManager(fixture('log-notifier'));
    await h.manager.start();
    await h.manager.infer(REQ);
    const lines = h.log.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.runnerLog === true);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      level: 'warn',
      msg: 'runner log',
      msgBytes: 'backend slow'.length,
      msgSha256: createHash('sha256').update('backend slow').digest('hex').slice(0, 16),
      fields: { latencyMs: 1234, cached: true },
    });
    expect(lines[0].fields).not.toHaveProperty('model');
    expect(lines[1]).toMatchObject({ level: 'info', msg: 'runner log', msgBytes: 300 + REQ.prompt.length });
    expect(lines[1].fields).toEqual({ n: 1 });
    expect(h.log.text()).not.toContain('backend slow');
    expect(h.log.text()).not.toContain(REQ.prompt);
  });

  it('a missing runner program is refused at prepare(): failed at once with runner-unavailable, no restart loop', async () => {
    h = makeManager(['/nonexistent/runner'], { policy: { maxCrashes: 2 } });
    const restarts: string[] = [];
    h.manager.on('restart', (r: string) => restarts.push(r));
    await h.manager.start();
    expect(h.manager.state).toBe('failed');
    expect(restarts).toEqual([]);
    expect(h.manager.status().retryAfterS).toBeGreaterThan(0);
    expect(h.manager.status().lastError).toBe('runner-unavailable');
    expect(await codeOf(h.manager.infer(REQ))).toBe('runner-unavailable');
  });
});
