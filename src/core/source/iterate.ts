/**
 * `pump` and `tick`: one iteration of QEMU 7.2's migration thread (migration_iteration_run and
 * the loop around it, facts §4.3, §4.4):
 *
 *   close the bandwidth window if ≥ 100 ms old (threshold, mbps, rate-limit reset); in
 *   precopy and postcopy a tick closes it only while the rate limiter holds the thread (`tick`)
 *   rate limited and no page request queued?          → nothing (the shell waits)
 *   precopy:  an iteration spanning pumps (option iterationNsMin) still running → more pages into
 *             its RAM PART (one PART per iteration; EOS and footer when it ends)
 *             remaining < threshold → sync (notifiers) and recount
 *             decide: iterate → one RAM PART chunk
 *                     complete → stop the guest (next pump: completion)
 *                     postcopy → postcopy-active, stop the guest (next pump: the switch)
 *   stopping: the completion or the switch (switchover.ts, postcopy-switch.ts)
 *   final-pass: the rest of the completion's last pass (option completionSpansPumps)
 *   postcopy, completing: postcopy.ts (the END section spans pumps)
 *   recover:  nothing (the recovery handshake runs on return-path input, recovery.ts)
 *
 * Why the stop takes its own pump: effects are carried out after an input returns, and the
 * final sync must see a stopped guest. Splitting at the stop keeps that true in real mode,
 * where vCPU threads run until the shell stops them.
 */
import { assertNever } from '../../lib/assert.ts';
import { NS_PER_MS, TARGET_PAGE_SIZE } from '../../lib/units.ts';
import { closeBandwidthWindow } from '../bandwidth.ts';
import { decideIteration, ramPending, shouldSyncBeforePending } from '../convergence.ts';
import { resetRateWindow } from '../rate-limiter.ts';
import { isActiveStatus } from '../status.ts';
import { syncDirtyBitmap } from './dirty-sync.ts';
import { pumpCompletion, pumpPostcopy } from './postcopy.ts';
import { switchToPostcopy } from './postcopy-switch.ts';
import { closeRamPart, fillRamPart, isThrottled, openRamPart, writeRamChunk } from './ram-chunk.ts';
import type { PrecopyIteration, SourceContext } from './source-context.ts';
import { beginStop, completePrecopy, pumpFinalPass } from './switchover.ts';

/** One iteration with at most `budgetBytes` wire bytes of background pages. */
export function pump(ctx: SourceContext, nowNs: number, budgetBytes: number): void {
  const phase = ctx.phase;
  const continuing = phase.kind === 'precopy' && iterationContinues(ctx, phase.iteration, nowNs, budgetBytes);
  if (phase.kind !== 'final-pass' && !continuing) rollWindow(ctx, nowNs);
  switch (phase.kind) {
    case 'precopy':
      if (continuing) return continueIteration(ctx, budgetBytes, ctx.main.wireOffsetBytes);
      return pumpPrecopy(ctx, nowNs, budgetBytes);
    case 'stopping':
      if (phase.next === 'complete') return completePrecopy(ctx, nowNs, budgetBytes);
      return switchToPostcopy(ctx, nowNs);
    case 'postcopy':
      return pumpPostcopy(ctx, nowNs, budgetBytes);
    case 'final-pass':
      return pumpFinalPass(ctx, nowNs, budgetBytes);
    case 'completing':
      return pumpCompletion(ctx, nowNs, budgetBytes);
    case 'idle':
    case 'awaiting-shut':
    case 'awaiting-written':
    case 'paused':
    case 'recover':
    case 'finished':
      return;
    default:
      return assertNever(phase);
  }
}

/**
 * Time passed: the bandwidth window may close, unless the migration thread is iterating. QEMU
 * updates the counters only in its loop, between iterations (migration_rate_limit after
 * migration_iteration_run, and when it wakes from the rate limiter's sleep), so a window holds
 * whole iterations whose bytes were written. In precopy and postcopy the shell's pumps are
 * those points; a tick closes the window there only while the rate limiter holds the thread
 * asleep. Never in the final pass (QEMU's thread is inside the completion).
 */
export function tick(ctx: SourceContext, nowNs: number): void {
  const kind = ctx.phase.kind;
  if (((kind === 'precopy' || kind === 'postcopy') && !isThrottled(ctx, 1)) || kind === 'final-pass') return;
  rollWindow(ctx, nowNs);
}

/** QEMU's migration_update_counters: closes the bandwidth window when it is due. */
function rollWindow(ctx: SourceContext, nowNs: number): void {
  if (!isActiveStatus(ctx.status)) return;
  ctx.countRate();
  const closed = closeBandwidthWindow(ctx.window, {
    nowNs,
    totalBytes: ctx.main.wireOffsetBytes,
    totalPages: ctx.stats.totalTransferredPages(),
    downtimeLimitMs: ctx.params.downtimeLimitMs,
    dirtyPagesRate: ctx.stats.dirtyPagesRate,
    remainingBytes: ctx.bitmap.dirtyCount * TARGET_PAGE_SIZE,
  });
  if (closed === null) return;
  ctx.stats.applyBandwidthSample(closed.sample);
  ctx.thresholdBytes = closed.sample.thresholdBytes;
  ctx.window = closed.next;
  ctx.limiter = resetRateWindow(ctx.limiter, nowNs);
}

/**
 * True when the next pump goes on with the precopy iteration that spans pumps (option
 * iterationNsMin): one runs, has lasted less than its bound, and the rate limiter has not
 * stopped it. QEMU's migration thread is then still inside ram_save_iterate. Pure.
 */
export function iterationGoesOn(ctx: SourceContext, nowNs: number, budgetBytes: number): boolean {
  const minNs = ctx.options.iterationNsMin;
  const phase = ctx.phase;
  if (minNs === null || phase.kind !== 'precopy' || phase.iteration === null) return false;
  // The rate limiter stops an iteration at the page that spends it; the clock, 64 pages later.
  return nowNs - phase.iteration.startNs < minNs && !isThrottled(ctx, budgetBytes);
}

/**
 * True when the precopy iteration that spans pumps goes on (iterationGoesOn). Otherwise a
 * running one is over (counted as QEMU's big wait when its time ended it): its chunk is closed
 * and the pump checks.
 */
function iterationContinues(ctx: SourceContext, iteration: PrecopyIteration | null, nowNs: number, budgetBytes: number): boolean {
  if (iteration === null) return false;
  if (iterationGoesOn(ctx, nowNs, budgetBytes)) return true;
  if (!isThrottled(ctx, budgetBytes)) {
    const c = ctx.counters;
    c.bigWaits++;
    c.lastBigWaitMs = Math.floor((nowNs - iteration.startNs) / NS_PER_MS);
    c.lastBigWaitPages = ctx.stats.totalTransferredPages() - iteration.startPages;
  }
  endIteration(ctx);
  return false;
}

/**
 * The next pump of a running iteration: one RAM PART for the whole iteration, as QEMU writes
 * it, so its pages go into the PART the iteration opened. The iteration ends with the pass
 * (nothing left dirty) or when the pump spent the rate limiter's window (the thread sleeps
 * until the window ends); then the PART is closed.
 */
function continueIteration(ctx: SourceContext, budgetBytes: number, budgetStartBytes: number): void {
  fillRamPart(ctx, budgetBytes, budgetStartBytes);
  ctx.countRate(); // The rate limiter sees this pump's bytes before it decides.
  if (ctx.bitmap.dirtyCount === 0 || isThrottled(ctx, 1)) return endIteration(ctx);
  ctx.updateRemaining();
  ctx.flush();
}

/** The running iteration ends: EOS and footer close its PART; the next pump checks. */
function endIteration(ctx: SourceContext): void {
  closeRamPart(ctx);
  ctx.phase = { kind: 'precopy', iteration: null };
  ctx.updateRemaining();
  ctx.flush();
}

function pumpPrecopy(ctx: SourceContext, nowNs: number, budgetBytes: number): void {
  if (isThrottled(ctx, budgetBytes)) return;
  let remainingBytes = ctx.bitmap.dirtyCount * TARGET_PAGE_SIZE;
  if (shouldSyncBeforePending({ remainingDirtyBytes: remainingBytes, thresholdBytes: ctx.thresholdBytes, inPostcopy: false })) {
    syncDirtyBitmap(ctx, nowNs, { notifiers: true, vmRunning: true });
    remainingBytes = ctx.bitmap.dirtyCount * TARGET_PAGE_SIZE;
  }
  const pending = ramPending(remainingBytes, ctx.caps['postcopy-ram']);
  const decision = decideIteration({
    pendingPrecopyOnlyBytes: pending.precopyOnlyBytes,
    pendingPostcopiableBytes: pending.postcopiableBytes,
    thresholdBytes: ctx.thresholdBytes,
    postcopyRequested: ctx.postcopyRequested,
    inPostcopy: false,
  });
  const c = ctx.counters;
  c.convergenceChecks++;
  c.lastCheckPendingBytes = pending.precopyOnlyBytes + pending.postcopiableBytes;
  c.lastCheckThresholdBytes = ctx.thresholdBytes;
  c.lastCheckDecision = decision;
  switch (decision) {
    case 'iterate': {
      if (ctx.options.iterationNsMin === null) return writeRamChunk(ctx, budgetBytes);
      ctx.phase = { kind: 'precopy', iteration: { startNs: nowNs, startPages: ctx.stats.totalTransferredPages() } };
      const budgetStartBytes = ctx.main.wireOffsetBytes;
      openRamPart(ctx);
      return continueIteration(ctx, budgetBytes, budgetStartBytes);
    }
    case 'complete':
    case 'postcopy':
      return beginStop(ctx, nowNs, decision);
    default:
      return assertNever(decision);
  }
}
