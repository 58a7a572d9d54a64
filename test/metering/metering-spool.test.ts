import { afterEach, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { copyFile, readFile, readdir, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FedaiError } from '../../supervisor/errors.js';
import { MeteringSpool, listSpoolFiles, spoolFileName } from '../../supervisor/metering/metering-spool.js';
import { verifySpoolFile } from '../../supervisor/metering/verify-spool.js';
import { captureLogger, signedRecord, tempDir } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
async function dirFor(): Promise<string> {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

describe('MeteringSpool', () => {
  test('append resolves after the line is in the file; order of calls is kept; lines verify', async () => {
    const dir = await dirFor();
    const { logger } = captureLogger();
    const spool = await MeteringSpool.open({ dir, logger });
    const first = signedRecord();
    await spool.append(first);
    const text = await readFile(spool.currentFile, 'utf8');
    expect(text).toBe(JSON.stringify(first) + '\n');
    const envs = Array.from({ length: 200 }, () => signedRecord());
    await Promise.all(envs.map((e) => spool.append(e)));
    await spool.close();
    const lines = (await readFile(join(dir, spoolFileName(1)), 'utf8')).trimEnd().split('\n');
    expect(lines.map((l) => JSON.parse(l).payload.requestId)).toEqual([first, ...envs].map((e) => e.payload.requestId));
    const v = await verifySpoolFile(join(dir, spoolFileName(1)));
    expect(v).toMatchObject({ records: 201, valid: 201, invalid: [], torn: false });
  });

  test('group commit: 64 concurrent appends share one write and about one fdatasync', async () => {
    const dir = await dirFor();
    const spool = await MeteringSpool.open({ dir, logger: captureLogger().logger });
    await Promise.all(Array.from({ length: 64 }, () => spool.append(signedRecord())));
    const s = spool.stats;
    expect(s.appends).toBe(64);
    expect(s.fsyncs).toBeLessThanOrEqual(2);
    expect(s.batches).toBeLessThanOrEqual(2);
    // Sequential appends each pay their own fsync.
    for (let i = 0; i < 5; i++) await spool.append(signedRecord());
    expect(spool.stats.fsyncs).toBe(s.fsyncs + 5);
    await spool.close();
  });

  test('rotates by size without splitting a line; an oversized line gets a file of its own', async () => {
    const dir = await dirFor();
    const lineBytes = Buffer.byteLength(JSON.stringify(signedRecord()) + '\n');
    const rotateBytes = lineBytes * 3 + 10;
    const spool = await MeteringSpool.open({ dir, rotateBytes, logger: captureLogger().logger });
    const envs = Array.from({ length: 10 }, () => signedRecord());
    await Promise.all(envs.map((e) => spool.append(e)));
    const big = signedRecord({ modelId: 'x'.repeat(rotateBytes) });
    await spool.append(big);
    const last = signedRecord();
    await spool.append(last);
    await spool.close();
    const files = await listSpoolFiles(dir);
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual([1, 2, 3, 4, 5, 6].map(spoolFileName));
    const seen: string[] = [];
    for (const f of files) {
      const v = await verifySpoolFile(f);
      expect(v.invalid).toEqual([]);
      expect(v.torn).toBe(false);
      const size = (await stat(f)).size;
      if (v.records > 1) expect(size).toBeLessThanOrEqual(rotateBytes);
      const text = await readFile(f, 'utf8');
      for (const l of text.trimEnd().split('\n')) seen.push(JSON.parse(l).payload.requestId);
    }
    expect(seen).toEqual([...envs, big, last].map((e) => e.payload.requestId));
    expect((await verifySpoolFile(files[4])).records).toBe(1); // the oversized line, alone
  });

  test('a torn last line (fixture) is truncated on open, logged with its byte count, and appends continue', async () => {
    const dir = await dirFor();
    const target = join(dir, spoolFileName(1));
    await copyFile(join(ROOT, 'test/fixtures/metering/torn-tail.jsonl'), target);
    const before = await verifySpoolFile(target);
    expect(before).toMatchObject({ records: 3, valid: 3, torn: true });
    const cap = captureLogger();
    const spool = await MeteringSpool.open({ dir, logger: cap.logger });
    const warn = cap.lines().find((l) => l.msg === 'metering spool: truncated a torn last line left by a crash');
    expect(warn).toMatchObject({ level: 'warn', tornBytes: 137 });
    expect(spool.stats.tornBytesAtOpen).toBe(137);
    expect((await verifySpoolFile(target)).torn).toBe(false);
    await spool.append(signedRecord());
    await spool.close();
    const after = await verifySpoolFile(target);
    expect(after).toMatchObject({ records: 4, valid: 4, invalid: [], torn: false });
  });

  test('reopening continues the newest file; a clean file is not touched', async () => {
    const dir = await dirFor();
    let spool = await MeteringSpool.open({ dir, logger: captureLogger().logger, rotateBytes: 4096 });
    for (let i = 0; i < 12; i++) await spool.append(signedRecord());
    const newest = spool.currentFile;
    await spool.close();
    const cap = captureLogger();
    spool = await MeteringSpool.open({ dir, logger: cap.logger, rotateBytes: 4096 });
    expect(spool.currentFile).toBe(newest);
    expect(spool.stats.tornBytesAtOpen).toBe(0);
    expect(cap.lines().filter((l) => l.level === 'warn')).toEqual([]);
    await spool.append(signedRecord());
    await spool.close();
    let total = 0;
    for (const f of await listSpoolFiles(dir)) total += (await verifySpoolFile(f)).valid;
    expect(total).toBe(13);
  });

  test('a write failure (ENOSPC from /dev/full) rejects with metering-write-failed; the next append goes to a fresh file', async () => {
    const dir = await dirFor();
    await symlink('/dev/full', join(dir, spoolFileName(1)));
    const cap = captureLogger();
    const spool = await MeteringSpool.open({ dir, logger: cap.logger });
    const results = await Promise.allSettled([spool.append(signedRecord()), spool.append(signedRecord())]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const err = (r as PromiseRejectedResult).reason;
      expect(err).toBeInstanceOf(FedaiError);
      expect((err as FedaiError).code).toBe('metering-write-failed');
      expect((err as FedaiError).status).toBe(500);
    }
    expect(cap.lines().some((l) => l.level === 'error' && l.msg === 'metering spool: write failed')).toBe(true);
    expect(spool.stats.failures).toBe(2);
    const ok = signedRecord();
    await spool.append(ok);
    expect(spool.currentFile).toBe(join(dir, spoolFileName(2)));
    await spool.close();
    const v = await verifySpoolFile(join(dir, spoolFileName(2)));
    expect(v).toMatchObject({ records: 1, valid: 1 });
  });

  test('close waits for queued appends; appends after close reject', async () => {
    const dir = await dirFor();
    const spool = await MeteringSpool.open({ dir, logger: captureLogger().logger });
    const pending = Array.from({ length: 20 }, () => spool.append(signedRecord()));
    await spool.close();
    await Promise.all(pending);
    expect((await verifySpoolFile(join(dir, spoolFileName(1)))).valid).toBe(20);
    await expect(spool.append(signedRecord())).rejects.toMatchObject({ code: 'metering-write-failed' });
  });

  test('crash: a child appending in a loop is SIGKILLed mid-way; after reopen every line verifies, every acknowledged record is there, appends continue', async () => {
    const dir = await dirFor();
    let totalAcked = 0;
    for (let round = 0; round < 2; round++) {
      const child = spawn(process.execPath, ['--import', './scripts/register-ts.mjs', 'test/fixtures/metering/spool-writer.ts', dir], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let acked = 0;
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
      await new Promise<void>((resolve, reject) => {
        let buf = '';
        child.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          const m = [...buf.matchAll(/acked (\d+)/g)].at(-1);
          if (m) acked = Number(m[1]);
          if (acked >= 64 * (3 + round)) resolve();
        });
        child.on('exit', () => reject(new Error(`writer exited early: ${stderr.slice(-2000)}`)));
      });
      // Land the kill somewhere inside the next burst's write or sync.
      await new Promise((r) => setTimeout(r, 1 + Math.floor(Math.random() * 15)));
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      totalAcked += acked;

      const spool = await MeteringSpool.open({ dir, logger: captureLogger().logger, rotateBytes: 8 * 1024 * 1024 });
      let valid = 0;
      for (const f of await listSpoolFiles(dir)) {
        const v = await verifySpoolFile(f);
        expect(v.invalid).toEqual([]);
        expect(v.torn).toBe(false);
        valid += v.valid;
      }
      expect(valid).toBeGreaterThanOrEqual(totalAcked);
      await spool.append(signedRecord());
      await spool.close();
      totalAcked = valid + 1;
    }
    const names = await readdir(dir);
    expect(names.every((n) => /^metering-\d{8}\.jsonl$/.test(n))).toBe(true);
  }, 60000);
});
