/**
 * The postcopy phase (facts §3.6, §3.7, §3.10), after the switch:
 *
 *   pump (postcopy):   rate limited by max-postcopy-bandwidth, but never while a request is queued
 *                      pending ≥ threshold → RAM PART chunk: queued requests first, then the
 *                                            background push
 *                      pending < threshold → END `ram` header; phase `completing`; this pump goes on
 *                                            as a completion pump
 *   pump (completing): queued requests first, then up to the shell's budget of the remaining
 *                      pages (no rate limit, no sync); the pump that sends the last page writes
 *                      EOS and the footer, EOF, and with postcopy-preempt EOS on the preempt
 *                      channel; then the source waits for SHUT (no VMDESCRIPTION)
 *
 *   serve-requests:    the queued requests alone, outside any pump (the shell calls it right after
 *                      return-path input): with postcopy-preempt bare records on the preempt
 *                      channel; without, a RAM PART chunk holding only them (in `completing`,
 *                      inside the open END section); no background page, no rate limit
 *
 * Why the END section spans pumps: QEMU's ram_save_complete checks the request queue before
 * every page it sends (ram_find_and_save_block → get_queued_page), so a vCPU that faults while
 * the rest is flushed waits for one page, not for the whole flush. Spreading the flush over
 * budgeted pumps, requests first in each, gives a shell the same bound; only EOF closes it.
 *
 * A page is sent at most once after the switch: nothing syncs the dirty log any more, so a bit
 * cleared by a send is never set again, and `sendPages` asserts it under debugChecks. (A
 * postcopy recovery re-dirties only pages the destination reports missing; recovery.ts.)
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
    // QEMU's qemu_savevm_state_complete_postcopy: END `ram` with the rest, then EOF.
    ctx.main.sectionEnd(ctx.options.ramSectionId);
    ctx.phase = { kind: 'completing' };
    pumpCompletion(ctx, nowNs, budgetBytes);
    return;
  }
  writeRamChunk(ctx, budgetBytes);
}

/**
 * One pump of the open END section: queued requests, then at most about `budgetBytes` wire
 * bytes (requests included) of the remaining pages; the last page closes the stream.
 */
export function pumpCompletion(ctx: SourceContext, nowNs: number, budgetBytes: number): void {
  const start = ctx.main.wireOffsetBytes + (ctx.preempt?.wireOffsetBytes ?? 0);
  serveRequests(ctx);
  const usedBytes = ctx.main.wireOffsetBytes + (ctx.preempt?.wireOffsetBytes ?? 0) - start;
  const allowanceBytes = budgetBytes - usedBytes;
  if (allowanceBytes > 0 && ctx.bitmap.dirtyCount > 0) {
    const background = ctx.backgroundEncoder();
    scanAndSend(ctx, background, background.wireOffsetBytes + allowanceBytes, Infinity);
  } else if (ctx.bitmap.dirtyCount > 0) {
    ctx.mark('completion-pump-requests-only', `${usedBytes} byte(s) of requests`);
  }
  if (ctx.bitmap.dirtyCount > 0) {
    ctx.updateRemaining();
    ctx.flush();
    return;
  }
  ctx.main.ramEos();
  ctx.main.footer(ctx.options.ramSectionId);
  ctx.main.eof();
  if (ctx.preempt !== null) ctx.preempt.ramEos();
  ctx.updateRemaining();
  ctx.flush();
  awaitShutOrComplete(ctx, nowNs);
}

/** The `serve-requests` input: queued requests only, now (see the file comment). */
export function serveRequestsNow(ctx: SourceContext, nowNs: number): void {
  if (ctx.requests.isEmpty) return;
  const phase = ctx.phase.kind;
  if (phase === 'completing') {
    pumpCompletion(ctx, nowNs, 0);
  } else if (phase === 'postcopy') {
    if (ctx.preempt === null) {
      writeRamChunk(ctx, 0);
      return;
    }
    serveRequests(ctx);
    ctx.flush();
  } else {
    // Before the switch (or after the end) requests wait for, or are dropped by, the next pump.
    ctx.mark('serve-requests-outside-postcopy', phase);
  }
}
