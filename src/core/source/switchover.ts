/**
 * The end of a source migration: stopping the guest, the precopy completion (facts §1.7 step 7
 * and 8), the device sections, and the way out to `completed` with cleanup.
 *
 * Precopy completion, over two pumps (iterate.ts says why):
 *
 *   pump n:    stop-guest                                     (downtime starts)
 *   pump n+1:  COMPLETE notifier; rate limit off
 *              END `ram`: final sync (BEFORE, MIGRATION_PASS, AFTER; vmRunning false),
 *                         every dirty page, EOS (not counted, as ram_save_complete), footer
 *              FULL device sections (hooks.saveDevices), EOF, VMDESCRIPTION
 *              no return path → completed (option awaitWritten: once the shell reports the
 *              stream written, as QEMU's blocking qemu_fflush); else wait for SHUT (status
 *              stays active)
 *   SHUT(0):   completed (downtime and total time end here), CLEANUP notifier
 *
 * With option completionSpansPumps (real mode) the last pass is spread over pumps: pump n+1
 * opens END, syncs and sends up to its budget of the dirty pages (phase `final-pass`); each
 * later pump sends up to its budget of the rest, and the one that sends the last page writes
 * EOS, the device sections and EOF. The bytes on the wire are the same. Without it, a shell
 * would get the whole last pass (hundreds of MiB when the link is fast: threshold = bandwidth ×
 * downtime limit) as one step's effects: every chunk a fresh buffer, nothing written meanwhile.
 * The final-pass pumps close no bandwidth window, as QEMU's counters stand still inside
 * qemu_savevm_state_complete_precopy.
 */
import type { DeviceSectionBlob } from '../engine-types.ts';
import { setUnlimited } from '../rate-limiter.ts';
import { stopThrottle, syncDirtyBitmap } from './dirty-sync.ts';
import { scanAndSend } from './page-scan.ts';
import { serveRequests } from './requests.ts';
import type { SourceContext } from './source-context.ts';

/** Stops the guest for the completion or the postcopy switch (which first goes postcopy-active). */
export function beginStop(ctx: SourceContext, nowNs: number, next: 'complete' | 'postcopy'): void {
  if (next === 'postcopy') ctx.setStatus('postcopy-active');
  ctx.effects.push({ kind: 'stop-guest' });
  ctx.guestStopped = true;
  ctx.stats.markDowntimeStart(nowNs);
  ctx.phase = { kind: 'stopping', next };
}

/**
 * The precopy completion from the COMPLETE notifier on: END `ram`, the final sync, then the
 * last pass (all of it, or `budgetBytes` of it with option completionSpansPumps).
 */
export function completePrecopy(ctx: SourceContext, nowNs: number, budgetBytes: number): void {
  ctx.hooks.precopyNotify('complete', nowNs, false);
  ctx.limiter = setUnlimited(ctx.limiter);
  ctx.main.sectionEnd(ctx.options.ramSectionId);
  syncDirtyBitmap(ctx, nowNs, { notifiers: true, vmRunning: false });
  ctx.phase = { kind: 'final-pass' };
  pumpFinalPass(ctx, nowNs, budgetBytes);
}

/**
 * One pump of the last pass: up to `budgetBytes` of the dirty pages (all of them without option
 * completionSpansPumps); once none is left, EOS, the device sections, EOF and VMDESCRIPTION.
 */
export function pumpFinalPass(ctx: SourceContext, nowNs: number, budgetBytes: number): void {
  const main = ctx.main;
  const id = ctx.options.ramSectionId;
  serveRequests(ctx);
  if (ctx.bitmap.dirtyCount > 0) {
    const background = ctx.backgroundEncoder();
    const limit = ctx.options.completionSpansPumps ? background.wireOffsetBytes + budgetBytes : Infinity;
    scanAndSend(ctx, background, limit, Infinity);
  }
  if (ctx.bitmap.dirtyCount > 0) {
    ctx.updateRemaining();
    ctx.flush();
    return;
  }
  ctx.syncMultifd();
  main.ramEos();
  main.footer(id);
  const devices = ctx.hooks.saveDevices(nowNs);
  writeDeviceSections(ctx, devices);
  main.eof();
  if (ctx.options.sendVmdesc) main.vmdescription(ctx.options.vmdescriptionJson(devices, main.pageSizeBytes));
  ctx.updateRemaining();
  ctx.flush();
  awaitShutOrComplete(ctx, nowNs);
}

/** FULL sections of `devices`, in order, into `encoder` (the main stream or a package). */
export function writeDeviceSections(ctx: SourceContext, devices: readonly DeviceSectionBlob[], encoder = ctx.main): void {
  for (const blob of devices) {
    const id = ctx.options.sectionIdOf(blob.idstr, blob.instanceId);
    encoder.sectionFull(id, blob.idstr, blob.instanceId, blob.versionId);
    encoder.bytes(blob.payload);
    encoder.footer(id);
  }
}

/**
 * After EOF: completed now without a return path (or when SHUT came already), else wait for
 * SHUT; without a return path and with option awaitWritten, wait for `written` instead.
 */
export function awaitShutOrComplete(ctx: SourceContext, nowNs: number): void {
  if (ctx.returnPath && !ctx.shutReceived) {
    ctx.phase = { kind: 'awaiting-shut' };
    return;
  }
  if (!ctx.returnPath && ctx.options.awaitWritten) {
    ctx.phase = { kind: 'awaiting-written' };
    return;
  }
  finishCompleted(ctx, nowNs);
}

/** The shell wrote everything: a completion waiting for it ends now (ignored in other phases). */
export function onWritten(ctx: SourceContext, nowNs: number): void {
  if (ctx.phase.kind === 'awaiting-written') finishCompleted(ctx, nowNs);
  else ctx.mark('written-ignored', ctx.phase.kind);
}

/** completed: statistics closed at `nowNs`, then QEMU's cleanup. */
export function finishCompleted(ctx: SourceContext, nowNs: number): void {
  ctx.stats.complete(nowNs, ctx.main.wireOffsetBytes);
  ctx.updateRemaining();
  ctx.setStatus('completed');
  ctx.phase = { kind: 'finished' };
  cleanup(ctx, nowNs);
}

/** QEMU's migrate_fd_cleanup: the CLEANUP notifier; throttling ends. */
export function cleanup(ctx: SourceContext, nowNs: number): void {
  ctx.requests.clear();
  ctx.hooks.precopyNotify('cleanup', nowNs, !ctx.guestStopped);
  stopThrottle(ctx);
}
