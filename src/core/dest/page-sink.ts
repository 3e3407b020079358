/**
 * The RAM half of a decoder sink on the destination, shared by the main channel
 * (incoming-stream.ts) and the postcopy-preempt channel (preempt-stream.ts): every PAGE or ZERO
 * record goes to the one PagePlacer over the one received map, so a page is placed exactly once
 * whichever channel brings it (a second record for it is MIG_ERR_DEST_PLACED_TWICE), and a
 * placed page wakes the vCPUs waiting for it.
 *
 *   record ─► PagePlacer.load* (postcopy = faults trapped) ─► waiters? ─► FaultTracker.release
 *                                                                       └► page-ready effect
 */
import type { VersionPageSink } from '../../format/ram-records.ts';
import type { StreamRecord } from '../../format/stream-types.ts';
import type { DestContext } from './dest-context.ts';
import type { FaultTracker } from './fault-tracker.ts';
import type { PagePlacer } from './placement.ts';

/** A sink whose RAM records are placed, and whose other records go to `onRecord`. */
export function createPageSink(
  ctx: DestContext,
  placer: PagePlacer,
  faults: FaultTracker,
  onRecord: (record: StreamRecord) => void,
): VersionPageSink {
  const afterPlacement = (pageIndex: number): void => {
    if (!ctx.trapFaults || !faults.hasWaiters(pageIndex)) return;
    faults.release(pageIndex, ctx.nowNs);
    ctx.effects.push({ kind: 'page-ready', pageIndex });
  };
  return {
    record: onRecord,
    ramPage: (block, offsetBytes, data) => afterPlacement(placer.loadPage(block, offsetBytes, data, ctx.trapFaults)),
    ramPageVersion: (block, offsetBytes, version) => afterPlacement(placer.loadVersion(block, offsetBytes, version, ctx.trapFaults)),
    ramZero: (block, offsetBytes, fill) => {
      if (fill !== 0) ctx.mark('zero-record-nonzero-fill', `fill 0x${fill.toString(16)}`);
      afterPlacement(placer.loadZero(block, offsetBytes, fill, ctx.trapFaults));
    },
    ramZeroRun: (block, offsetBytes, pageCount) => {
      const first = placer.loadZeroRun(block, offsetBytes, pageCount, ctx.trapFaults);
      if (!ctx.trapFaults || !faults.anyWaiters()) return;
      for (let page = first; page < first + pageCount; page++) afterPlacement(page);
    },
  };
}
