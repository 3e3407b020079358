/**
 * QEMU 7.2's bitmap_mutex as it meets free page hints: the migration thread holds it for a
 * whole ram_save_iterate (until MAX_WAIT, 50 ms of wall time, has passed, the rate limit stops
 * it, or the pass ends), and qemu_guest_free_page_hint needs it to clear the hinted bits. So a
 * hint the balloon's iothread takes while an iteration runs is applied only once the iteration
 * ends (QEMU commit "migration: Move bitmap_mutex out of migration_bitmap_clear_dirty()", 6.1:
 * "any call sites to qemu_guest_free_page_hint() can be delayed").
 *
 * The iteration is the source engine's own (option iterationNsMin, src/core/source/iterate.ts):
 * the world asks the engine whether one is open when a hint comes (`SourcePort.iterationOpen`)
 * and, before each precopy pump, whether that pump goes on with it (`iterationGoesOn`). If not,
 * the iteration has ended and the hints it held are applied before the pump checks for
 * convergence. The rate limiter's sleep, the switchover and the end of the migration release
 * them too. This file only holds the queue.
 *
 * Consequence (the guest lab's, src/sim/calibration.ts): at 128 MiB/s the migration thread
 * sleeps most of each 100 ms window and hints land at once; at 1 GiB/s it never sleeps and a
 * hint waits up to 50 ms, long enough for the bulk pass to get to a block first.
 */

/** A hint waiting for the lock. */
export interface GatedHint {
  readonly startPage: number;
  readonly pageCount: number;
  readonly cmdId: number;
}

export class HintGate {
  /** Hints taken while the lock was held, in order. */
  private queued: GatedHint[] = [];

  /** A hint arrives while the migration thread holds the lock: it waits. */
  hold(hint: GatedHint): void {
    this.queued.push(hint);
  }

  /** The lock is free: returns the waiting hints, in order, and forgets them. */
  release(): GatedHint[] {
    if (this.queued.length === 0) return [];
    const out = this.queued;
    this.queued = [];
    return out;
  }
}
