/**
 * The oracle of a migrated kernel-build guest (allocator churn in the vCPU threads, see
 * page-cache.ts), over the two VMs' RAM read with both guests stopped at the same guest state
 * (the source after its stop, the destination before it ran):
 *
 *   memory-equality     every page equals the source's at the stop, except pages the balloon
 *                       hinted free and that no vCPU holds written at the stop: the guest does
 *                       not care about their content, and hinting let the source skip them
 *   kernel-build vCPU i every page vCPU i holds in a live block and has written (its page
 *                       cache's written map) equals the source's, with no exemption: a page
 *                       hinted earlier, then allocated and written again, must have been re-sent
 *
 * A vCPU without written pages fails its check: the workload did not run.
 */
import { comparePages } from '../guest/oracle.ts';
import type { VmCore } from './vm-core.ts';

export interface OracleVerdict {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

function listed(pages: readonly number[]): string {
  return pages.slice(0, 8).join(', ');
}

/** The checks of the module comment. */
export function checkKernelBuildMigration(source: VmCore, dest: VmCore): OracleVerdict[] {
  const out: OracleVerdict[] = [];
  const a = source.machine.backing;
  const b = dest.machine.backing;
  const caches = source.machine.pageCaches;
  const hinted = source.hintedPages;
  const excused = { has: (p: number): boolean => hinted.has(p) && !(caches?.isWritten(p) ?? false) };
  const same = comparePages(a, b, { allowedToDiffer: excused, pageEquals: (p) => a.pageEquals(b, p) });
  let excusedDiffering = 0;
  for (let p = 0; p < a.pageCount; p++) if (excused.has(p) && !a.pageEquals(b, p)) excusedDiffering++;
  out.push({
    name: 'memory-equality',
    ok: same.mismatchCount === 0,
    detail: `${same.pagesCompared} pages equal to the source at the stop; ${same.pagesSkipped} hinted free and not compared ` +
      `(${excusedDiffering} of them differ: free memory whose old contents the source skipped)` + (same.mismatchCount > 0 ? `; ${same.mismatchCount} differ (first: ${listed(same.mismatches)})` : ''),
  });
  for (let vcpu = 0; vcpu < (caches?.cacheCount ?? 0); vcpu++) {
    let written = 0;
    let rehinted = 0;
    const bad: number[] = [];
    for (let p = 0; p < a.pageCount; p++) {
      if (!caches!.writtenBy(vcpu, p)) continue;
      written++;
      if (hinted.has(p)) rehinted++;
      if (!a.pageEquals(b, p)) bad.push(p);
    }
    out.push({
      name: `kernel-build vCPU ${vcpu}`,
      ok: bad.length === 0 && written > 0,
      detail: `${written} written pages in live blocks, ${rehinted} of them hinted free earlier in the migration; ` +
        (bad.length === 0 ? 'all equal at the destination' : `${bad.length} differ (first: ${listed(bad)})`),
    });
  }
  return out;
}
