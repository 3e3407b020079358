/**
 * The simulated world's clock: integer nanoseconds that only move forward, and only when the
 * scheduler moves them. Everything in the simulation reads time from here and hands it to the
 * core as `nowNs`, so a run never depends on the host's clock.
 *
 * What it deliberately doesn't do: run anything when time passes (the scheduler does) or
 * convert to wall-clock dates.
 */
import { assert } from '../lib/assert.ts';

export class VirtualClock {
  /** Current time, ns since the start of the simulation. */
  private current: number;

  constructor(startNs = 0) {
    assert(Number.isSafeInteger(startNs) && startNs >= 0, `bad clock start ${startNs}`);
    this.current = startNs;
  }

  /** Now, integer ns. */
  get nowNs(): number {
    return this.current;
  }

  /** Moves to `timeNs`, which must be an integer not before now. */
  advanceTo(timeNs: number): void {
    assert(Number.isSafeInteger(timeNs), `clock time must be an integer ns, got ${timeNs}`);
    assert(timeNs >= this.current, `clock cannot go back from ${this.current} to ${timeNs}`);
    this.current = timeNs;
  }

  /** Moves forward by `deltaNs` (an integer ≥ 0). */
  advanceBy(deltaNs: number): void {
    this.advanceTo(this.current + deltaNs);
  }
}
