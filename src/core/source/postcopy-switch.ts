/**
 * The switch to postcopy (facts §3.4, order verified by capture), in the pump after the one
 * that moved the status to postcopy-active and stopped the guest:
 *
 *   COMPLETE notifier (iterable handlers without postcopy support: none besides RAM)
 *   final sync WITHOUT notifiers (MIGRATION_PASS still emitted)
 *   scan position and "last block" reset
 *   POSTCOPY_RAM_DISCARD per block, ≤ 12 ranges each: every run of dirty pages (§3.8)
 *   rate limit → max-postcopy-bandwidth
 *   PING(2)
 *   PACKAGED(L) { POSTCOPY_LISTEN, COMPLETE notifier + FULL device sections, PING(3), POSTCOPY_RUN }
 *   downtime ends
 *   PING(4)
 *
 * Under `track`, every page a DISCARD throws away on the destination leaves `sentOnce`: the
 * destination no longer holds a copy, so a hint that clears it later must be answered.
 */
import { Bitmap } from '../../lib/bitmap.ts';
import { TARGET_PAGE_SIZE } from '../../lib/units.ts';
import { encodeNestedStream } from '../../format/stream-encoder.ts';
import { POSTCOPY_RAM_DISCARD_MAX_RANGES } from '../../format/constants.ts';
import { setRateLimit } from '../rate-limiter.ts';
import { syncDirtyBitmap } from './dirty-sync.ts';
import { nextSetBefore, resetScan, runEndBefore } from './page-scan.ts';
import type { SourceContext } from './source-context.ts';
import { writeDeviceSections } from './switchover.ts';

/** The switch sequence, from the COMPLETE notifier to PING(4). */
export function switchToPostcopy(ctx: SourceContext, nowNs: number): void {
  const main = ctx.main;
  ctx.hooks.precopyNotify('complete', nowNs, false);
  syncDirtyBitmap(ctx, nowNs, { notifiers: false, vmRunning: false });
  resetScan(ctx);
  main.resetLastBlock();
  ctx.preempt?.resetLastBlock();
  ctx.lastPageChannel = 'main';
  sendDiscards(ctx);
  if (ctx.sentOnce !== null) forgetDiscarded(ctx.sentOnce, ctx.bitmap.bits.words);
  ctx.limiter = setRateLimit(ctx.limiter, ctx.params.maxPostcopyBandwidthBytesPerSec);
  main.command({ kind: 'ping', value: 2 });
  const pkg = encodeNestedStream((e) => {
    e.command({ kind: 'postcopy-listen' });
    ctx.hooks.precopyNotify('complete', nowNs, false);
    writeDeviceSections(ctx, ctx.hooks.saveDevices(nowNs), e);
    e.command({ kind: 'ping', value: 3 });
    e.command({ kind: 'postcopy-run' });
  });
  main.packaged(pkg);
  ctx.stats.markPostcopyDowntimeEnd(nowNs);
  main.command({ kind: 'ping', value: 4 });
  if (ctx.options.debugChecks) ctx.sentAfterSwitch = new Bitmap(ctx.bitmap.pageCount);
  ctx.updateRemaining();
  ctx.flush();
  ctx.phase = { kind: 'postcopy' };
}

/** POSTCOPY_RAM_DISCARD commands for every run of dirty pages, block by block in list order. */
function sendDiscards(ctx: SourceContext): void {
  const words = ctx.bitmap.bits.words;
  for (const block of ctx.blocks) {
    const end = block.startPage + block.pageCount;
    let ranges: Array<{ startBytes: number; lengthBytes: number }> = [];
    const send = (): void => {
      ctx.main.command({ kind: 'postcopy-ram-discard', blockName: block.name, ranges });
      ctx.counters.discardCommands++;
      ctx.counters.discardRanges += ranges.length;
      ranges = [];
    };
    let page = nextSetBefore(words, block.startPage, end);
    while (page >= 0) {
      const runEnd = runEndBefore(words, page, end);
      ranges.push({ startBytes: (page - block.startPage) * TARGET_PAGE_SIZE, lengthBytes: (runEnd - page) * TARGET_PAGE_SIZE });
      if (ranges.length === POSTCOPY_RAM_DISCARD_MAX_RANGES) send();
      page = nextSetBefore(words, runEnd, end);
    }
    if (ranges.length > 0) send();
  }
}

/** sentOnce &= ~dirty: the discarded pages are gone from the destination. */
function forgetDiscarded(sentOnce: Bitmap, dirtyWords: Uint32Array): void {
  const words = sentOnce.words;
  for (let w = 0; w < words.length; w++) {
    const dirty = dirtyWords[w];
    if (dirty !== 0) words[w] &= ~dirty;
  }
}
