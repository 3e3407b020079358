/**
 * The postcopy phase (facts §3.6, §3.7, §3.10), after the switch:
 *
 *   pump:  rate limited by max-postcopy-bandwidth, but never while a request is queued
 *          pending ≥ threshold → RAM PART chunk: queued requests first, then the background push
 *          pending < threshold → END `ram`: queued requests, every remaining page (no sync, no
 *                                rate limit), EOS; EOF; with postcopy-preempt: EOS on the preempt
 *                                channel; then wait for SHUT (no VMDESCRIPTION)
 *
 * A page is sent at most once after the switch: nothing syncs the dirty log any more, so a bit
 * cleared by a send is never set again, and `sendPages` asserts it under debugChecks.
 */
import { assert } from '../../lib/assert.ts';
import { TARGET_PAGE_SIZE } from '../../lib/units.ts';
import { decideIteration, ramPending } from '../convergence.ts';
import { isThrottled, writeRamChunk } from './ram-chunk.ts';
import { scanAndSend } from './page-scan.ts';
import { serveRequests } from './requests.ts';
import type { SourceContext } from './source-context.ts';
import { awaitShutOrComplete } from './switchover.ts';

/** One postcopy iteration. */
export function pumpPostcopy(ctx: SourceContext, nowNs: number, budgetBytes: number): void {
  if (isThrottled(ctx, budgetBytes)) return;
  const pending = ramPending(ctx.bitmap.dirtyCount * TARGET_PAGE_SIZE, true);
  const decision = decideIteration({
    pendingPrecopyOnlyBytes: pending.precopyOnlyBytes,
    pendingPostcopiableBytes: pending.postcopiableBytes,
    thresholdBytes: ctx.thresholdBytes,
    postcopyRequested: true,
    inPostcopy: true,
  });
  assert(decision !== 'postcopy', 'a source in postcopy cannot switch to postcopy again');
  if (decision === 'complete') {
    completePostcopy(ctx, nowNs);
    return;
  }
  writeRamChunk(ctx, budgetBytes);
}

/** QEMU's qemu_savevm_state_complete_postcopy: END `ram` with the rest, EOF. */
function completePostcopy(ctx: SourceContext, nowNs: number): void {
  const main = ctx.main;
  const id = ctx.options.ramSectionId;
  main.sectionEnd(id);
  serveRequests(ctx);
  scanAndSend(ctx, ctx.backgroundEncoder(), Infinity, Infinity);
  main.ramEos();
  main.footer(id);
  main.eof();
  if (ctx.preempt !== null) ctx.preempt.ramEos();
  ctx.updateRemaining();
  ctx.flush();
  awaitShutOrComplete(ctx, nowNs);
}
