/**
 * How a source migration ends early (facts §4.7): failure, cancel, and a broken channel.
 *
 *   failed:     status → failed (error-desc), run-guest if the engine had stopped the guest,
 *               CLEANUP notifier                       (QEMU: migration_iteration_finish, then cleanup)
 *   cancel:     status → cancelling, run-guest if stopped, CLEANUP, status → cancelled
 *   channel error: postcopy-active (after the package went out) → postcopy-paused, the guest
 *               stays stopped (it runs on the destination); postcopy-recover → postcopy-paused
 *               (the resume handshake failed); anything else running → failed
 *   migrate-pause: postcopy-active → postcopy-paused, as a channel error (recovery.ts)
 *
 * A pause logs QEMU's "Detected IO failure for postcopy. Migration paused." (the `postcopy-paused`
 * mark's detail); the shell drops the connections when it sees the status effect.
 *
 * Split brain (docs/reliability.md): QEMU 7.2 restarts the source guest after any failure or
 * cancel, even when the destination may already run it (the return path broke after EOF, before
 * SHUT; or in postcopy). livemig does not: once the source has written what lets the
 * destination start the guest (the precopy EOF: phase awaiting-shut; the postcopy package),
 * a failure or cancel leaves the guest stopped, marked 'guest-kept-stopped', and the operator
 * decides (`cont` on the source once the destination is known not to run it). Before that
 * point the guest runs again at once, as in QEMU.
 */
import { isPostcopyStatus, isRunningStatus } from '../status.ts';
import type { SourceContext } from './source-context.ts';
import { SourceError } from './source-types.ts';
import { cleanup } from './switchover.ts';

/** Fails the migration with `error` (no effect once finished or before start). */
export function failMigration(ctx: SourceContext, nowNs: number, error: SourceError): void {
  const phase = ctx.phase.kind;
  if (phase === 'finished' || phase === 'idle') return;
  if (phase === 'paused') {
    // postcopy-paused has no move to failed; the error is kept for the record.
    ctx.mark('error-while-paused', error.code);
    return;
  }
  if (phase === 'recover') {
    // QEMU: a failed resume handshake pauses again (postcopy-recover → postcopy-paused).
    ctx.mark('recover-failed', `${error.code}: ${error.message}`);
    pausePostcopy(ctx);
    return;
  }
  const handedOver = destinationMayRun(ctx);
  ctx.error = error;
  ctx.stats.fail(error.message);
  ctx.setStatus('failed');
  ctx.phase = { kind: 'finished' };
  runGuestAgain(ctx, handedOver);
  cleanup(ctx, nowNs);
}

/** migrate_cancel: only while a migration runs (and is not already cancelling). */
export function cancelMigration(ctx: SourceContext, nowNs: number): void {
  if (!isRunningStatus(ctx.status) || ctx.status === 'cancelling') {
    ctx.mark('cancel-not-running', ctx.status);
    return;
  }
  const handedOver = destinationMayRun(ctx);
  ctx.setStatus('cancelling');
  ctx.phase = { kind: 'finished' };
  runGuestAgain(ctx, handedOver);
  cleanup(ctx, nowNs);
  ctx.setStatus('cancelled');
}

/** The migration channel broke. */
export function onChannelError(ctx: SourceContext, nowNs: number, reason: string): void {
  const phase = ctx.phase;
  switch (phase.kind) {
    case 'idle':
    case 'finished':
    case 'paused':
      ctx.mark('channel-error-ignored', phase.kind);
      return;
    case 'postcopy':
    case 'completing':
    case 'recover':
      return pausePostcopy(ctx);
    case 'awaiting-shut':
      if (ctx.status === 'postcopy-active') return pausePostcopy(ctx);
      return failMigration(ctx, nowNs, new SourceError('MIG_ERR_CHANNEL', reason));
    case 'precopy':
    case 'stopping':
    case 'final-pass':
    case 'awaiting-written':
      // In `stopping` for postcopy the package has not gone out: the destination never ran
      // the guest, so failing (and running the source guest again) is safe.
      return failMigration(ctx, nowNs, new SourceError('MIG_ERR_CHANNEL', reason));
  }
}

/** QEMU's log line when postcopy pauses (both sides). */
export const POSTCOPY_PAUSED_TEXT = 'Detected IO failure for postcopy. Migration paused.';

/**
 * postcopy-active or postcopy-recover → postcopy-paused. Whatever was written and not received
 * is found again by the recovery's RECV_BITMAP exchange; queued requests are dropped (the
 * destination re-sends one for every fault still waiting).
 */
export function pausePostcopy(ctx: SourceContext): void {
  ctx.setStatus('postcopy-paused');
  ctx.phase = { kind: 'paused' };
  ctx.requests.clear();
  ctx.recoverPending.clear();
  ctx.mark('postcopy-paused', POSTCOPY_PAUSED_TEXT);
}

/** The mark of a failure or cancel that leaves the guest stopped (see the header). */
export const GUEST_KEPT_STOPPED_MARK = 'guest-kept-stopped';

/**
 * True once the destination may run the guest: the precopy EOF went out (awaiting SHUT) or
 * the postcopy package may have reached it.
 */
function destinationMayRun(ctx: SourceContext): boolean {
  if (ctx.phase.kind === 'awaiting-shut') return true;
  return isPostcopyStatus(ctx.status) && ctx.phase.kind !== 'stopping';
}

function runGuestAgain(ctx: SourceContext, handedOver: boolean): void {
  if (!ctx.guestStopped) return;
  if (handedOver) {
    ctx.mark(GUEST_KEPT_STOPPED_MARK, 'the destination may run the guest; cont on the source is the operator\'s call');
    return;
  }
  ctx.effects.push({ kind: 'run-guest' });
  ctx.guestStopped = false;
}
