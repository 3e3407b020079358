/**
 * QEMU 7.2's per-iteration decision (migration_iteration_run + ram_save_pending, facts §4.3):
 * send one more round, complete (stop the guest and send the rest), or switch to postcopy.
 *
 * Two predicates, kept apart because the source machine runs a dirty-bitmap sync between them:
 * 1. `shouldSyncBeforePending`: RAM's pending count is below the threshold (and not in
 *    postcopy), so sync first and recount; the sync may find new dirty pages.
 * 2. `decideIteration`: with the (possibly re-counted) pending bytes, what to do.
 *
 * What it deliberately doesn't do: run the sync, measure the threshold (bandwidth.ts), or check
 * switchover permission (`switchover-ack` is QEMU 8.1+).
 */

/** What the migration thread does next. */
export type IterationDecision = 'iterate' | 'complete' | 'postcopy';

/** Inputs of the decision, all bytes. */
export interface ConvergenceInput {
  /** Pending bytes that must go before the switch (QEMU's pend_pre: RAM without postcopy-ram). */
  readonly pendingPrecopyOnlyBytes: number;
  /** Pending bytes that may also go after a postcopy switch (pend_compat + pend_post). */
  readonly pendingPostcopiableBytes: number;
  /** Current threshold_size (0 before the first bandwidth window closed). */
  readonly thresholdBytes: number;
  /** `migrate-start-postcopy` was issued. */
  readonly postcopyRequested: boolean;
  /** The source is already in postcopy (status postcopy-active). */
  readonly inPostcopy: boolean;
}

/**
 * The decision of one iteration. Criteria:
 * - pending = precopy-only + postcopiable; if pending > 0 and pending ≥ threshold:
 *   - not in postcopy, postcopy requested and precopy-only ≤ threshold → 'postcopy';
 *   - otherwise → 'iterate';
 * - else (pending is 0 or below the threshold) → 'complete'.
 * At pending = threshold exactly QEMU iterates once more.
 */
export function decideIteration(input: ConvergenceInput): IterationDecision {
  const pendingBytes = input.pendingPrecopyOnlyBytes + input.pendingPostcopiableBytes;
  if (pendingBytes > 0 && pendingBytes >= input.thresholdBytes) {
    if (!input.inPostcopy && input.postcopyRequested && input.pendingPrecopyOnlyBytes <= input.thresholdBytes) {
      return 'postcopy';
    }
    return 'iterate';
  }
  return 'complete';
}

/** Inputs of the sync-first rule. */
export interface SyncFirstInput {
  /** RAM's remaining dirty bytes (dirty pages × target page size) before syncing. */
  readonly remainingDirtyBytes: number;
  /** Current threshold_size. */
  readonly thresholdBytes: number;
  /** The source is in postcopy (postcopy-active, -paused or -recover). */
  readonly inPostcopy: boolean;
}

/**
 * ram_save_pending's "sync first" rule. Criteria: not in postcopy and remaining dirty bytes
 * strictly below the threshold. Then the caller syncs the dirty bitmap (with the precopy
 * notifiers) and recounts before `decideIteration`. Never true while the threshold is 0.
 */
export function shouldSyncBeforePending(input: SyncFirstInput): boolean {
  return !input.inPostcopy && input.remainingDirtyBytes < input.thresholdBytes;
}

/**
 * How RAM reports its pending bytes. With capability postcopy-ram all of it is postcopiable,
 * otherwise all of it is precopy-only.
 */
export function ramPending(
  remainingDirtyBytes: number,
  postcopyRam: boolean,
): { readonly precopyOnlyBytes: number; readonly postcopiableBytes: number } {
  return postcopyRam
    ? { precopyOnlyBytes: 0, postcopiableBytes: remainingDirtyBytes }
    : { precopyOnlyBytes: remainingDirtyBytes, postcopiableBytes: 0 };
}
