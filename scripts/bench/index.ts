/**
 * npm run bench [-- --quick] [section ...]
 * Sections: http (default set includes all), crypto, metering, payments, spawn, adapters.
 * Every section is time-bounded and targets loopback only.
 */
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const wanted = args.filter((a) => !a.startsWith('--'));
const all = ['crypto', 'http', 'spawn', 'metering', 'payments', 'paid-http', 'adapters'];
const sections = wanted.length > 0 ? wanted : all;
const seconds = quick ? 2 : 5;

const out: string[] = [`# fedai-node benchmark (${new Date().toISOString()}, node ${process.version}, ${quick ? 'quick' : 'full'})`, ''];
const print = (s: string) => {
  process.stdout.write(s + '\n\n');
  out.push(s, '');
};
process.stdout.write(out.join('\n') + '\n');

for (const section of sections) {
  const t0 = Date.now();
  try {
    switch (section) {
      case 'http': {
        const { runHttpBench } = await import('./http-bench.js');
        print(await runHttpBench({ seconds }));
        break;
      }
      case 'paid-http': {
        const { runPaidHttpBench } = await import('./http-bench.js');
        print(await runPaidHttpBench({ seconds }));
        break;
      }
      case 'crypto': {
        const { runCryptoBench } = await import('./crypto.js');
        const rows = await runCryptoBench({ seconds: quick ? 0.3 : 0.8 });
        const { table, fmt } = await import('./stats.js');
        print('## signatures and canonical JSON\n\n' + table(['operation', 'ops/s', 'µs/op'], rows.map((r) => [r.name, fmt(r.opsPerSec, 0), fmt(r.usPerOp, 1)])));
        break;
      }
      case 'metering': {
        const { runMeteringBench } = await import('./metering.js');
        const rows = await runMeteringBench({ seconds: quick ? 1 : 2 });
        const { table, fmt } = await import('./stats.js');
        print('## metering spool (durable appends; group commit: one synchronized write per batch)\n\n' + table(['concurrency', 'appends/s', 'synced writes/s'], rows.map((r) => [r.concurrency, fmt(r.appendsPerSec, 0), fmt(r.fsyncsPerSec, 0)])));
        break;
      }
      case 'payments': {
        const mod = (await import('./payments.js')) as { runPaymentsBench: (o: { seconds: number }) => Promise<string> };
        print(await mod.runPaymentsBench({ seconds: quick ? 1 : 2 }));
        break;
      }
      case 'spawn': {
        const mod = (await import('./spawn.js')) as { runSpawnBench: (o: { runs: number }) => Promise<string> };
        print(await mod.runSpawnBench({ runs: quick ? 3 : 8 }));
        break;
      }
      case 'adapters': {
        const mod = (await import('./adapters.js')) as { runAdaptersBench: (o: { seconds: number }) => Promise<string> };
        print(await mod.runAdaptersBench({ seconds: quick ? 1 : 3 }));
        break;
      }
      default:
        process.stderr.write(`unknown section "${section}" (known: ${all.join(', ')})\n`);
        process.exitCode = 2;
    }
  } catch (err) {
    print(`## ${section}\n\nfailed after ${Date.now() - t0} ms: ${(err as Error).stack ?? err}`);
    process.exitCode = 1;
  }
}
