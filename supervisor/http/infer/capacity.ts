/**
 * Node-level admission: NODE_CAPACITY_LOAD + in-flight must stay below NODE_CAPACITY_MAX.
 * A slot is held from admission until the runner has settled (or died), never released early.
 */
import { FedaiError } from '../../errors.js';

export class Capacity {
  private inFlight = 0;
  constructor(
    private readonly max: number,
    private readonly externalLoad: number,
    private readonly onChange?: (inFlight: number) => void,
  ) {}

  get current(): number {
    return this.inFlight;
  }

  get load(): number {
    return this.externalLoad + this.inFlight;
  }

  get maxConcurrent(): number {
    return this.max;
  }

  /** Takes a slot or throws capacity-exhausted (429, Retry-After 1). Returns the release function. */
  acquire(): () => void {
    if (this.externalLoad + this.inFlight >= this.max) {
      throw new FedaiError('capacity-exhausted', { retryAfterS: 1, details: [`in flight ${this.inFlight} of ${this.max}`] });
    }
    this.inFlight += 1;
    this.onChange?.(this.inFlight);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight -= 1;
      this.onChange?.(this.inFlight);
    };
  }
}
