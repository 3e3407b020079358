/**
 * The dirty bitmap sync (facts §4.2; QEMU's migration_bitmap_sync_precopy and
 * migration_bitmap_sync): the guest's dirty log is moved into the migration bitmap, then
 * pages never to send are cleared again (gaps between blocks, virtio-mem unplugged ranges from
 * `hooks.skipPages()`), the sync is counted, and once a sync period of more than 1 s closed
 * the dirty-pages-rate and auto-converge are updated.
 *
 *   [BEFORE_BITMAP_SYNC] → fetch log → clear skip ranges → dirty-sync-count++ →
 *   (period > 1000 ms: auto-converge, dirty-pages-rate) → MIGRATION_PASS → [AFTER_BITMAP_SYNC]
 *
 * The notifiers (brackets) run for the setup sync, the syncs of ram_save_pending and the
 * precopy completion sync, but not for the postcopy switch's final sync (facts §4.1).
 *
 * Deviation, on purpose: QEMU clears unplugged ranges only after the first sync, so a guest
 * that writes unplugged memory gets it sent. livemig clears them after every sync, so
 * unplugged memory is never sent (DESIGN §4.5).
 */
import { TARGET_PAGE_SIZE } from '../../lib/units.ts';
import { autoConvergeStep, dirtyPagesRate, isSyncPeriodDue } from '../auto-converge.ts';
import { msOf } from '../bandwidth.ts';
import type { SourceContext } from './source-context.ts';

/** How a sync runs. */
export interface SyncMode {
  /** Run the BEFORE/AFTER_BITMAP_SYNC notifiers around it. */
  readonly notifiers: boolean;
  /** The guest runs (false for the completion and switch syncs); passed to the notifiers. */
  readonly vmRunning: boolean;
}

/** One dirty bitmap sync at `nowNs`. */
export function syncDirtyBitmap(ctx: SourceContext, nowNs: number, mode: SyncMode): void {
  if (mode.notifiers) ctx.hooks.precopyNotify('before-bitmap-sync', nowNs, mode.vmRunning);
  const nowMs = msOf(nowNs);
  if (ctx.periodStartMs === null) ctx.periodStartMs = nowMs;
  const added = ctx.ram.syncDirtyLog(ctx.bitmap);
  clearNeverSent(ctx);
  ctx.stats.recordDirtySync();
  ctx.periodDirtyPages += added;
  ctx.counters.lastSyncPeriodDirtyPages = ctx.periodDirtyPages; // read before a period end resets it, as QEMU's trace
  if (isSyncPeriodDue(ctx.periodStartMs, nowMs)) endSyncPeriod(ctx, nowMs);
  ctx.event('MIGRATION_PASS', { pass: ctx.stats.dirtySyncCount });
  ctx.updateRemaining();
  if (mode.notifiers) ctx.hooks.precopyNotify('after-bitmap-sync', nowNs, mode.vmRunning);
}

/** Clears the bits of pages that are never sent: outside every block, and the skip ranges. */
function clearNeverSent(ctx: SourceContext): void {
  for (const [start, end] of ctx.gaps) ctx.bitmap.clearRange(start, end);
  const skip = ctx.hooks.skipPages();
  if (skip === null) return;
  const pageCount = ctx.bitmap.pageCount;
  let cleared = 0;
  for (const range of skip) {
    const start = Math.max(0, range.start);
    const end = Math.min(pageCount, range.end);
    if (start < end) cleared += ctx.bitmap.clearRange(start, end);
  }
  if (cleared > 0) ctx.mark('skip-pages-cleared', String(cleared));
}

/**
 * A sync period ended (QEMU: end_time > time_last_bitmap_sync + 1000): auto-converge's check,
 * the dirty-pages-rate, and a new period.
 */
function endSyncPeriod(ctx: SourceContext, nowMs: number): void {
  const periodStartMs = ctx.periodStartMs as number;
  const transferred = ctx.stats.transferredBytes;
  if (ctx.caps['auto-converge']) {
    const result = autoConvergeStep(ctx.autoConverge, ctx.params, {
      bytesDirtyPeriod: ctx.periodDirtyPages * TARGET_PAGE_SIZE,
      bytesXferPeriod: transferred - ctx.periodStartTransferredBytes,
    });
    ctx.autoConverge = result.state;
    if (result.throttled) {
      ctx.stats.cpuThrottlePct = result.state.throttlePct;
      ctx.effects.push({ kind: 'throttle', percent: result.state.throttlePct });
    }
  }
  ctx.stats.dirtyPagesRate = dirtyPagesRate(ctx.periodDirtyPages, nowMs - periodStartMs);
  ctx.periodStartMs = nowMs;
  ctx.periodDirtyPages = 0;
  ctx.periodStartTransferredBytes = transferred;
}

/** Stops throttling at the end of the migration (QEMU's cpu_throttle_stop). */
export function stopThrottle(ctx: SourceContext): void {
  if (ctx.autoConverge.throttlePct === 0) return;
  ctx.autoConverge = { throttlePct: 0, dirtyRateHighCount: 0 };
  ctx.stats.cpuThrottlePct = 0;
  ctx.effects.push({ kind: 'throttle', percent: 0 });
}
