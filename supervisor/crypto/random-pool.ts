/**
 * Cryptographic randomness in 32-byte pieces cut from one 4 KiB refill: each randomFillSync is a
 * getrandom syscall, and signing needs 32 fresh bytes of auxRand per signature. Pieces are copies,
 * never handed out twice.
 */
import { randomFillSync } from 'node:crypto';

const POOL = new Uint8Array(4096);
let offset = POOL.length;

export function random32(): Uint8Array {
  if (offset + 32 > POOL.length) {
    randomFillSync(POOL);
    offset = 0;
  }
  const out = POOL.slice(offset, offset + 32);
  POOL.fill(0, offset, offset + 32);
  offset += 32;
  return out;
}
