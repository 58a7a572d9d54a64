import { describe, expect, it } from '@jest/globals';
import { FedaiError } from '../../supervisor/errors.js';
import { Admission } from '../../supervisor/runners/admission.js';

const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: FedaiError) => e.code);

describe('Admission', () => {
  it('admits maxParallel, queues FIFO up to queueMax, then capacity-exhausted', async () => {
    const a = new Admission(2, 2);
    const r1 = await a.acquire();
    const r2 = await a.acquire();
    const order: number[] = [];
    const q1 = a.acquire().then((r) => (order.push(1), r));
    const q2 = a.acquire().then((r) => (order.push(2), r));
    expect(a.inFlight).toBe(2);
    expect(a.queued).toBe(2);
    const err = await a.acquire().catch((e: FedaiError) => e);
    expect(err).toBeInstanceOf(FedaiError);
    expect((err as FedaiError).code).toBe('capacity-exhausted');
    expect((err as FedaiError).status).toBe(429);
    r1();
    r1(); // idempotent
    const rq1 = await q1;
    expect(a.inFlight).toBe(2);
    r2();
    const rq2 = await q2;
    expect(order).toEqual([1, 2]);
    rq1();
    rq2();
    expect(a.inFlight).toBe(0);
  });

  it('a queued request honours its abort signal', async () => {
    const a = new Admission(1, 5);
    const r = await a.acquire();
    const ac = new AbortController();
    const q = a.acquire(ac.signal);
    const next = a.acquire();
    expect(a.queued).toBe(2);
    ac.abort();
    expect(await code(q)).toBe('request-cancelled');
    expect(a.queued).toBe(1);
    r();
    expect(await code(next)).toBe('ok');
    expect(await code(a.acquire(AbortSignal.abort()))).toBe('request-cancelled');
  });

  it('rejectQueued and setMaxParallel', async () => {
    const a = new Admission(1, 5);
    const r = await a.acquire();
    const q = a.acquire();
    a.rejectQueued(() => new FedaiError('node-draining'));
    expect(await code(q)).toBe('node-draining');
    const q2 = a.acquire();
    a.setMaxParallel(2);
    expect(await code(q2)).toBe('ok');
    expect(a.inFlight).toBe(2);
    r();
  });

  it('queueMax 0 means no queue', async () => {
    const a = new Admission(1, 0);
    await a.acquire();
    expect(await code(a.acquire())).toBe('capacity-exhausted');
  });
});
