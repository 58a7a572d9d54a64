/** Child process for receipt-store tests: spends nonces 0..N-1 of one signer in a shared store; prints how many it won. */
import { ReceiptStore } from '../../supervisor/payments/receipt-store.js';

const [dir, count, startAt] = process.argv.slice(2);
const store = ReceiptStore.open(dir!, { pruneIntervalMs: 0 });
// start together: wait for the agreed wall-clock moment
await new Promise((r) => setTimeout(r, Math.max(0, Number(startAt) - Date.now())));
let won = 0;
for (let i = 0; i < Number(count); i++) {
  if (await store.spend({ signer: 'ab'.repeat(32), nonce: `n-${i}`, paymentHash: (i % 256).toString(16).padStart(2, '0').repeat(32) }, { requestId: 'r', amountSats: 1, paidAtMs: Date.now(), keepUntilMs: Date.now() + 600_000 })) won++;
}
await store.close();
process.stdout.write(String(won));
