/**
 * QEMU 7.2's bitmap_mutex as it meets free page hints: the migration thread holds it for a
 * whole ram_save_iterate (up to MAX_WAIT, 50 ms of wall time, or until the rate limit stops
 * it), and qemu_guest_free_page_hint needs it to clear the hinted bits. So a hint the balloon's
 * iothread takes while an iteration runs is applied only once the iteration ends (QEMU commit
 * "migration: Move bitmap_mutex out of migration_bitmap_clear_dirty()", 6.1: "any call sites
 * to qemu_guest_free_page_hint() can be delayed").
 *
 * The simulated source sends an iteration as several pumps (the world's budget is in wire
 * bytes); the gate keeps its own iteration clock: an iteration opens at a precopy pump when
 * none is open and lasts `iterationNs` of pumping; the rate limiter's wait, the switchover and
 * the end of the migration close it. Hints queued meanwhile are released when it closes.
 *
 * Consequence (the guest lab's, src/sim/calibration.ts): at 128 MiB/s the migration thread
 * sleeps most of each 100 ms window and hints land at once; at 1 GiB/s it never sleeps and a
 * hint waits up to 50 ms, long enough for the bulk pass to get to a block first.
 *
 * Pure: the world tells it what happens.
 */

/** A hint waiting for the lock. */
export interface GatedHint {
  readonly startPage: number;
  readonly pageCount: number;
  readonly cmdId: number;
}

export class HintGate {
  /** How long an iteration holds the lock at most, ns (QEMU's MAX_WAIT). */
  readonly iterationNs: number;
  /** When the open iteration began, or -1 when none is open. */
  private openSinceNs = -1;
  /** Hints taken while the lock was held, in order. */
  private queued: GatedHint[] = [];
  /** Hints that had to wait, in total (for reports). */
  delayedHints = 0;

  constructor(iterationNs: number) {
    this.iterationNs = iterationNs;
  }

  /** Whether the migration thread holds the lock now. */
  get held(): boolean {
    return this.openSinceNs >= 0;
  }

  /** A hint arrives: queued (true) while the lock is held, else the caller applies it. */
  offer(hint: GatedHint): boolean {
    if (!this.held) return false;
    this.queued.push(hint);
    this.delayedHints++;
    return true;
  }

  /**
   * A precopy pump at `nowNs`: an expired iteration ends (its queued hints are returned, to be
   * applied before the pump) and a new one opens.
   */
  beginPump(nowNs: number): GatedHint[] {
    let released: GatedHint[] = [];
    if (this.held && nowNs >= this.openSinceNs + this.iterationNs) released = this.release();
    if (!this.held) this.openSinceNs = nowNs;
    return released;
  }

  /** The iteration ends now (rate-limit wait, switchover, end): returns the queued hints. */
  release(): GatedHint[] {
    this.openSinceNs = -1;
    const out = this.queued;
    this.queued = [];
    return out;
  }
}
