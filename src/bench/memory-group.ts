/**
 * The `memory` benchmark group, from the memory layer's own measurements
 * (src/memory/measure.ts): dirty-log sync of a 64 GiB guest with 1% of its pages dirty
 * (against the sync of a clean log), single-thread guest writes per second with dirty
 * logging on (against the same writes untracked), and the bookkeeping bytes per page with
 * their projection to a 1 TiB guest (goal ≤ 2 GiB). Each timed figure is the median over
 * repeated calls; each call's own median is one sample.
 */
import { measureBookkeeping, measureDirtySync, measureDirtyWriteThroughput, PAGES_1_TIB, PAGES_64_GIB } from '../memory/measure.ts';
import { GiB } from '../lib/units.ts';
import type { BenchContext, BenchGroup } from './registry.ts';
import { median } from './table.ts';
import type { BenchRow } from './table.ts';

export const BOOKKEEPING_GOAL_GIB = 2;

export function makeMemoryGroup(calls = { full: 5, quick: 3 }): BenchGroup {
  return {
    name: 'memory',
    description: 'dirty-log sync (64 GiB, 1% dirty), guest writes with dirty logging, bookkeeping for 1 TiB',
    async run(ctx: BenchContext): Promise<BenchRow[]> {
      const n = ctx.quick ? calls.quick : calls.full;
      ctx.progress('memory: dirty-log sync of 64 GiB at 1%');
      const sync = [];
      for (let i = 0; i < n; i++) sync.push(measureDirtySync(ctx.clockNs, { pageCount: PAGES_64_GIB, dirtyFraction: 0.01, runs: 3, seed: i + 1 }));
      const syncMs = sync.map((s) => s.syncTimeNsMedian / 1e6);
      const emptyMs = sync.map((s) => s.emptySyncTimeNsMedian / 1e6);

      ctx.progress('memory: guest writes with dirty logging');
      const writes = [];
      for (let i = 0; i < n; i++) writes.push(measureDirtyWriteThroughput(ctx.clockNs));
      const tracked = writes.map((w) => w.pagesPerSecond / 1e6);
      const untracked = writes.map((w) => w.untrackedPagesPerSecond / 1e6);

      const b = measureBookkeeping({ pageCount: PAGES_64_GIB });
      const tibGiB = b.projected1TiBBytes / GiB;
      return [
        {
          group: 'memory',
          name: 'dirty-log sync, 64 GiB guest, 1% dirty',
          value: median(syncMs),
          unit: 'ms',
          samples: syncMs,
          versus: { name: 'clean-log sync', value: median(emptyMs) },
          note: `${sync[0].dirtyPageCount} of ${sync[0].pageCount} pages dirty; each sample is the median of 3 syncs`,
        },
        {
          group: 'memory',
          name: 'guest writes with dirty logging',
          value: median(tracked),
          unit: 'Mpages/s',
          samples: tracked,
          versus: { name: 'untracked', value: median(untracked) },
          note: `one byte per page, ${writes[0].pageCount} pages x ${writes[0].pagesWritten / writes[0].pageCount} passes, one thread`,
        },
        {
          group: 'memory',
          name: 'bookkeeping per page (compact backing + logs)',
          value: b.totalBytesPerPage,
          unit: 'B/page',
          samples: [b.totalBytesPerPage],
          note: `compact ${b.compactBytesPerPage} + dirty log ${b.dirtyLogBytesPerPage} + migration bitmap ${b.migrationBitmapBytesPerPage} + received map ${b.receivedMapBytesPerPage.toFixed(4)} (${b.versionBits}-bit versions)`,
        },
        {
          group: 'memory',
          name: 'bookkeeping for a 1 TiB guest',
          value: tibGiB,
          unit: 'GiB',
          samples: [tibGiB],
          goal: { value: BOOKKEEPING_GOAL_GIB, better: 'lower', text: `<= ${BOOKKEEPING_GOAL_GIB} GiB` },
          note: `bytes per page measured on ${b.pageCount} pages, times ${PAGES_1_TIB} pages`,
        },
      ];
    },
  };
}
