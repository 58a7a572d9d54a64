/**
 * Runner spawn-to-ready (spawn → initialize response) per sandbox profile, for the Node runner host
 * (from TypeScript sources via tsx, and compiled from dist/ when `npm run build` has been run) and
 * the Python reference runner.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { measureSpawnToReadyForProfile } from '../../supervisor/sandbox/spawn-to-ready.js';
import { PACKAGE_ROOT, pythonRunnerCommand, runnerHostCommand } from '../../supervisor/runners/runner-command.js';
import { fmt, percentile, table } from './stats.js';

export async function runSpawnBench(opts: { runs: number }): Promise<string> {
  const logger = pino({ level: 'silent' });
  const distMain = path.join(PACKAGE_ROOT, 'dist/runner-host/main.js');
  const runners: Array<[string, string[] | undefined]> = [
    ['node runner host (tsx, from sources)', runnerHostCommand()],
    ...(existsSync(distMain) ? ([['node runner host (dist/)', [process.execPath, distMain]]] as Array<[string, string[]]>) : []),
    ['python reference runner', pythonRunnerCommand()],
  ];
  const profiles = ['disabled', 'dev', 'strict'];
  const rows: (string | number)[][] = [];
  for (const [name, command] of runners) {
    const row: (string | number)[] = [name];
    for (const profile of profiles) {
      try {
        const ms = (await measureSpawnToReadyForProfile(profile, { runs: opts.runs, logger, ...(command ? { command } : {}) })).sort((a, b) => a - b);
        row.push(`${fmt(percentile(ms, 50), 0)} (min ${fmt(ms[0]!, 0)})`);
      } catch (err) {
        row.push(`n/a: ${(err as Error).message.slice(0, 60)}`);
      }
    }
    rows.push(row);
  }
  const note = existsSync(distMain) ? '' : '\n(run `npm run build` first to include the compiled runner host)';
  return `## runner spawn-to-ready, ms (median of ${opts.runs}, fastest in brackets)\n\n${table(['runner', ...profiles], rows)}${note}`;
}
