/**
 * The mock and the Python reference runner pass the whole conformance suite when launched inside the
 * `strict` sandbox profile, through `fedai-node check-runner --profile strict`.
 */
import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { dispatch } from '../../supervisor/cli/dispatch.js';
import { checkRunnerCommand } from '../../supervisor/cli/commands/check-runner.js';
import type { CliIO } from '../../supervisor/cli/command.js';

const missing = process.getuid?.() !== 0 ? 'not root' : !existsSync('/usr/bin/bwrap') ? 'bubblewrap is not installed' : undefined;
if (missing && process.env.FEDAI_REQUIRE_SANDBOX === '1') throw new Error(`FEDAI_REQUIRE_SANDBOX=1 but ${missing}`);
const maybe = missing ? it.skip : it;

describe(`check-runner inside strict${missing ? ` (skipped: ${missing})` : ''}`, () => {
  maybe.each(['mock', 'python'])('the %s runner passes every check', async (builtin) => {
    const io = { out: '', err: '', env: { PATH: process.env.PATH } as NodeJS.ProcessEnv, cwd: os.tmpdir() } as CliIO & { out: string; err: string };
    io.stdout = (s) => void (io.out += s);
    io.stderr = (s) => void (io.err += s);
    const code = await dispatch('fedai-node', [checkRunnerCommand], ['check-runner', '--builtin', builtin, '--profile', 'strict', '--json'], io);
    const body = JSON.parse(io.out);
    expect(body.checks.filter((c: { ok: boolean }) => !c.ok)).toEqual([]);
    expect(body.checks.length).toBeGreaterThanOrEqual(15);
    expect(code).toBe(0);
  }, 120_000);
});
