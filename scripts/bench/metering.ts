/**
 * Metering spool throughput: appends/s and fdatasync/s at concurrency 1 and 64 (group commit), on a
 * temp directory, each for a bounded time. Records are pre-signed so only the spool is measured.
 * Run directly: node --import ./scripts/register-ts.mjs scripts/bench/metering.ts [seconds]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { signEnvelope, type Envelope } from '../../supervisor/crypto/envelope.js';
import { parseIdentity } from '../../supervisor/crypto/keys.js';
import { buildMeteringRecord } from '../../supervisor/metering/metering-record.js';
import { MeteringSpool } from '../../supervisor/metering/metering-spool.js';
import { createLogger } from '../../supervisor/observability/logger.js';
import type { MeteringRecord } from '../../supervisor/protocol/wire-types.js';

export interface MeteringBenchRow {
  concurrency: number;
  appendsPerSec: number;
  fsyncsPerSec: number;
  /** Mean records per fdatasync. */
  recordsPerFsync: number;
  appends: number;
  seconds: number;
}

export async function runMeteringBench(opts: { seconds?: number; concurrencies?: number[]; dir?: string } = {}): Promise<MeteringBenchRow[]> {
  const seconds = opts.seconds ?? 2;
  const identity = parseIdentity('11'.repeat(32));
  const logger = createLogger({ level: 'silent' });
  const pool: Envelope<MeteringRecord>[] = Array.from({ length: 256 }, (_, i) =>
    signEnvelope(
      buildMeteringRecord({
        request: { requestId: `bench-${i}`, prompt: `benchmark prompt number ${i}` },
        nodeId: 'node-1',
        modelId: 'bench-model',
        inputTokens: 128,
        outputTokens: 256,
        wallTimeMs: 900,
        output: 'x'.repeat(1000),
        outcome: 'ok',
        now: Date.now(),
      }),
      identity,
    ),
  );
  const rows: MeteringBenchRow[] = [];
  for (const concurrency of opts.concurrencies ?? [1, 64]) {
    const dir = await mkdtemp(join(opts.dir ?? tmpdir(), 'fedai-metering-bench-'));
    try {
      const spool = await MeteringSpool.open({ dir, logger });
      const end = performance.now() + seconds * 1000;
      let next = 0;
      const worker = async () => {
        while (performance.now() < end) await spool.append(pool[next++ % pool.length]);
      };
      const t0 = performance.now();
      const before = spool.stats;
      await Promise.all(Array.from({ length: concurrency }, worker));
      const elapsed = (performance.now() - t0) / 1000;
      const s = spool.stats;
      await spool.close();
      const appends = s.appends - before.appends;
      const fsyncs = s.fsyncs - before.fsyncs;
      rows.push({
        concurrency,
        appendsPerSec: appends / elapsed,
        fsyncsPerSec: fsyncs / elapsed,
        recordsPerFsync: fsyncs ? appends / fsyncs : 0,
        appends,
        seconds: elapsed,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const seconds = Number(process.argv[2] ?? 2);
  const rows = await runMeteringBench({ seconds });
  process.stdout.write(`metering spool (append + group-commit fdatasync), ${tmpdir()}\n`);
  process.stdout.write('concurrency  appends/s  synced writes/s  records/write\n');
  for (const r of rows) {
    process.stdout.write(`${String(r.concurrency).padStart(11)}  ${r.appendsPerSec.toFixed(0).padStart(9)}  ${r.fsyncsPerSec.toFixed(0).padStart(8)}  ${r.recordsPerFsync.toFixed(1).padStart(13)}\n`);
  }
}
