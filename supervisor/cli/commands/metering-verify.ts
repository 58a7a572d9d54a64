/**
 * `fedai-node metering verify <file|dir>... [--json] [--node-key-id npub]`: re-verifies every record of
 * metering spool files (signature, shape) and prints totals. A directory means all its
 * metering-<seq>.jsonl files in sequence order. Exit 1 when any record fails, or — with --node-key-id —
 * is signed by another key; 2 on usage errors (including a path that does not exist). A torn last line
 * (crash mid-write; the spool drops it on its next open) is reported but is not a failure: that record
 * was never acknowledged, so no result was sent for it.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { isNpub, toNpub } from '../../crypto/keys.js';
import { listSpoolFiles } from '../../metering/metering-spool.js';
import { verifySpoolFile, type MeteringTotals, type SpoolVerification } from '../../metering/verify-spool.js';
import { EXIT_FAIL, EXIT_OK, parseFlags, UsageError, writeJson, type CliCommand, type CliIO } from '../command.js';

const USAGE = `usage: fedai-node metering verify <file|dir>... [--json] [--node-key-id <npub>]

Re-verifies every record in metering spool files: the node's BIP-340 signature and the record shape.
A directory stands for its metering-<seq>.jsonl files, oldest first.

  --node-key-id <npub>   every record must be signed by this key (others count as failures)
  --json                 machine-readable report
  -h, --help             this text

Exit codes: 0 all records verify; 1 a record fails or has another signer; 2 usage error.`;

interface FileReport extends SpoolVerification {
  file: string;
  foreignSigner: number;
}

function addTotals(into: MeteringTotals, t: Omit<MeteringTotals, 'records'>, records: number): void {
  into.records += records;
  into.inputTokens += t.inputTokens;
  into.outputTokens += t.outputTokens;
  into.bytesIn += t.bytesIn;
  into.bytesOut += t.bytesOut;
  into.wallTimeMs += t.wallTimeMs;
}

function fmtTotals(t: MeteringTotals): string {
  return `records=${t.records} inputTokens=${t.inputTokens} outputTokens=${t.outputTokens} bytesIn=${t.bytesIn} bytesOut=${t.bytesOut} wallTimeMs=${t.wallTimeMs}`;
}

async function expand(inputs: string[], cwd: string): Promise<string[]> {
  const files: string[] = [];
  for (const input of inputs) {
    const p = path.resolve(cwd, input);
    let st;
    try {
      st = await stat(p);
    } catch {
      throw new UsageError(`no such file or directory: ${input}`);
    }
    if (st.isDirectory()) {
      const inDir = await listSpoolFiles(p);
      if (inDir.length === 0) throw new UsageError(`no metering-<seq>.jsonl files in ${input}`);
      files.push(...inDir);
    } else files.push(p);
  }
  return files;
}

export const meteringVerifyCommand: CliCommand = {
  name: 'metering verify',
  summary: 'verify the signatures of metering spool files and print totals',
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    if (args.includes('--help') || args.includes('-h')) {
      io.stdout(USAGE + '\n');
      return EXIT_OK;
    }
    const { values, positionals } = parseFlags(args, { json: { type: 'boolean' }, 'node-key-id': { type: 'string' } }, true);
    if (positionals.length === 0) throw new UsageError('give at least one spool file or directory');
    let expected: string | undefined;
    if (values['node-key-id'] !== undefined) {
      try {
        expected = toNpub(values['node-key-id']);
      } catch {
        throw new UsageError(`--node-key-id: "${values['node-key-id']}" is not an npub or 64-hex public key`);
      }
      if (!isNpub(expected)) throw new UsageError('--node-key-id is not a valid key');
    }
    const files = await expand(positionals, io.cwd);
    const reports: FileReport[] = [];
    const total: MeteringTotals = { records: 0, inputTokens: 0, outputTokens: 0, bytesIn: 0, bytesOut: 0, wallTimeMs: 0 };
    const byModel: Record<string, MeteringTotals> = {};
    const signers = new Set<string>();
    let invalid = 0;
    let foreign = 0;
    let torn = 0;
    let lines = 0;
    for (const file of files) {
      const v = await verifySpoolFile(file);
      const foreignSigner = expected ? Object.entries(v.bySigner).filter(([k]) => k !== expected).reduce((n, [, c]) => n + c, 0) : 0;
      reports.push({ file, ...v, foreignSigner });
      lines += v.records;
      invalid += v.invalid.length;
      foreign += foreignSigner;
      if (v.torn) torn++;
      addTotals(total, v.totals, v.valid);
      for (const [m, t] of Object.entries(v.byModel)) addTotals((byModel[m] ??= { records: 0, inputTokens: 0, outputTokens: 0, bytesIn: 0, bytesOut: 0, wallTimeMs: 0 }), t, t.records);
      for (const s of v.signers) signers.add(s);
    }
    const ok = invalid === 0 && foreign === 0;
    if (values.json) {
      writeJson(io, {
        ok,
        files: reports.map((r) => ({
          file: r.file,
          records: r.records,
          valid: r.valid,
          invalid: r.invalid,
          torn: r.torn,
          foreignSigner: r.foreignSigner,
          signers: r.signers,
          totals: r.totals,
          byOutcome: r.byOutcome,
        })),
        records: lines,
        valid: total.records,
        invalid,
        foreignSigner: foreign,
        tornFiles: torn,
        totals: total,
        byModel,
        signers: [...signers].sort(),
        ...(expected ? { expectedKeyId: expected } : {}),
      });
    } else {
      for (const r of reports) {
        io.stdout(`${r.file}: ${r.valid}/${r.records} valid${r.torn ? ', torn last line (unacknowledged, dropped on next open)' : ''}${r.foreignSigner ? `, ${r.foreignSigner} signed by another key` : ''}\n`);
        for (const bad of r.invalid.slice(0, 20)) io.stdout(`  line ${bad.line}: ${bad.reason}\n`);
        if (r.invalid.length > 20) io.stdout(`  … ${r.invalid.length - 20} more invalid lines\n`);
      }
      io.stdout(`total: ${fmtTotals(total)}\n`);
      for (const [m, t] of Object.entries(byModel).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) io.stdout(`  model ${m}: ${fmtTotals(t)}\n`);
      io.stdout(`signers: ${[...signers].sort().join(', ') || '(none)'}\n`);
      io.stdout(ok ? 'OK: every record verifies\n' : `FAIL: ${invalid} invalid record(s)${expected ? `, ${foreign} signed by a key other than ${expected}` : ''}\n`);
    }
    return ok ? EXIT_OK : EXIT_FAIL;
  },
};
