import { afterEach, describe, expect, test } from '@jest/globals';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { meteringVerifyCommand } from '../../supervisor/cli/commands/metering-verify.js';
import type { CliIO } from '../../supervisor/cli/command.js';
import { MeteringSpool, spoolFileName } from '../../supervisor/metering/metering-spool.js';
import { verifySpoolFile } from '../../supervisor/metering/verify-spool.js';
import { captureLogger, nodeIdentity, otherIdentity, signedRecord, tempDir } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function io(cwd: string): CliIO & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: (t) => void (out += t), stderr: (t) => void (err += t), env: {}, cwd, out: () => out, err: () => err };
}

async function spoolWith(lines: string[]): Promise<{ dir: string; file: string }> {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  const file = join(t.dir, spoolFileName(1));
  await writeFile(file, lines.map((l) => l + '\n').join(''));
  return { dir: t.dir, file };
}

describe('verifySpoolFile', () => {
  test('the fixture: three valid records, totals by model and outcome, torn tail flagged', async () => {
    const v = await verifySpoolFile(join(ROOT, 'test/fixtures/metering/torn-tail.jsonl'));
    expect(v).toMatchObject({
      records: 3,
      valid: 3,
      invalid: [],
      torn: true,
      totals: { inputTokens: 60, outputTokens: 120, wallTimeMs: 600, bytesIn: 48, bytesOut: 6 },
      byOutcome: { ok: 2, error: 1 },
      signers: [nodeIdentity.npub],
    });
    expect(v.byModel['model-a']).toMatchObject({ records: 2, inputTokens: 30, outputTokens: 60 });
    expect(v.byModel['model-b']).toMatchObject({ records: 1, inputTokens: 30, outputTokens: 60 });
  });

  test('a tampered field, a broken line, a bad shape and a foreign signer are each reported', async () => {
    const good = signedRecord();
    const tampered = signedRecord();
    tampered.payload.outputTokens = 1_000_000;
    const badShape = signedRecord();
    (badShape.payload as unknown as Record<string, unknown>).promptHash = 'not-hex';
    const foreign = signedRecord({ signer: otherIdentity });
    const { file } = await spoolWith([JSON.stringify(good), JSON.stringify(tampered), '{"payload":', JSON.stringify(badShape), JSON.stringify(foreign)]);
    const v = await verifySpoolFile(file);
    expect(v.records).toBe(5);
    expect(v.valid).toBe(2);
    expect(v.invalid).toEqual([
      { line: 2, reason: 'invalid-signature' },
      { line: 3, reason: 'not JSON' },
      { line: 4, reason: 'payload.promptHash must be 64 lowercase hex' },
    ]);
    expect(v.signers).toEqual([nodeIdentity.npub, otherIdentity.npub].sort());
    expect(v.torn).toBe(false);
  });
});

describe('fedai-node metering verify', () => {
  test('a directory written by the spool verifies: exit 0 and totals; --json is machine-readable', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const spool = await MeteringSpool.open({ dir: t.dir, rotateBytes: 4096, logger: captureLogger().logger });
    for (let i = 0; i < 10; i++) await spool.append(signedRecord({ modelId: i % 2 ? 'b' : 'a', inputTokens: 2, outputTokens: 5 }));
    await spool.close();
    const a = io(t.dir);
    expect(await meteringVerifyCommand.run(['.'], a)).toBe(0);
    expect(a.out()).toContain('total: records=10 inputTokens=20 outputTokens=50');
    expect(a.out()).toContain('OK: every record verifies');
    const b = io(t.dir);
    expect(await meteringVerifyCommand.run([t.dir, '--json', '--node-key-id', nodeIdentity.npub], b)).toBe(0);
    const j = JSON.parse(b.out());
    expect(j).toMatchObject({ ok: true, valid: 10, invalid: 0, foreignSigner: 0, signers: [nodeIdentity.npub] });
    expect(j.files.length).toBeGreaterThan(1);
    expect(j.byModel.a.records + j.byModel.b.records).toBe(10);
  });

  test('exit 1 on an invalid record, and on another signer when --node-key-id is given', async () => {
    const tampered = signedRecord();
    tampered.payload.inputTokens = 99;
    const { file: bad } = await spoolWith([JSON.stringify(signedRecord()), JSON.stringify(tampered)]);
    const a = io('/');
    expect(await meteringVerifyCommand.run([bad], a)).toBe(1);
    expect(a.out()).toContain('line 2: invalid-signature');

    const { file: mixed } = await spoolWith([JSON.stringify(signedRecord()), JSON.stringify(signedRecord({ signer: otherIdentity }))]);
    expect(await meteringVerifyCommand.run([mixed], io('/'))).toBe(0);
    const c = io('/');
    expect(await meteringVerifyCommand.run([mixed, '--node-key-id', nodeIdentity.pubHex], c)).toBe(1);
    expect(c.out()).toContain('1 signed by another key');
  });

  test('a torn tail alone is reported but does not fail', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    await copyFile(join(ROOT, 'test/fixtures/metering/torn-tail.jsonl'), join(t.dir, 'x.jsonl'));
    const a = io(t.dir);
    expect(await meteringVerifyCommand.run(['x.jsonl'], a)).toBe(0);
    expect(a.out()).toContain('torn last line');
  });

  test('usage: --help, no argument, missing path, bad key', async () => {
    const h = io('/');
    expect(await meteringVerifyCommand.run(['--help'], h)).toBe(0);
    expect(h.out()).toContain('usage: fedai-node metering verify');
    await expect(meteringVerifyCommand.run([], io('/'))).rejects.toThrow(/at least one/);
    await expect(meteringVerifyCommand.run(['/nonexistent/spool'], io('/'))).rejects.toThrow(/no such file/);
    await expect(meteringVerifyCommand.run(['x', '--node-key-id', 'nope'], io('/'))).rejects.toThrow(/not an npub/);
    await expect(meteringVerifyCommand.run(['x', '--bogus'], io('/'))).rejects.toMatchObject({ name: 'UsageError' });
  });
});
