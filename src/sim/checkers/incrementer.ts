/**
 * Invariant 7 (DESIGN §4): the incrementer oracle passes. The incrementer guest adds one to
 * byte 0 of each of its pages in order, so the memory the guest runs on at the end shows at
 * most one edge, exactly at the incrementer's cursor (guest/oracle.ts checkIncrementer, QEMU's
 * check_guests_ram). A stale page (a lost write) shows as a bad step or a misplaced edge.
 */
import { checkIncrementer } from '../../guest/oracle.ts';
import { notApplicable, type InvariantVerdict } from './verdict.ts';

export const INCREMENTER_ORACLE = 'incrementer-oracle';

/** What the checker reads: the incrementer's pages over the memory the guest runs on. */
export interface IncrementerInput {
  /** Null unless the workload is the incrementer. */
  readonly incrementer: {
    /** Pages walked, in walk order: index → page frame. */
    readonly pageCount: number;
    pageAt(index: number): number;
    /** Byte 0 of a page of the memory the guest runs on at the end. */
    readByte0(pageIndex: number): number;
    /** The walk index of the next page to increment (where the edge must be). */
    readonly cursor: number;
  } | null;
}

/** Checks invariant 7; see the module comment. */
export function checkIncrementerOracle(input: IncrementerInput): InvariantVerdict {
  const inc = input.incrementer;
  if (inc === null) return notApplicable(INCREMENTER_ORACLE, 'the workload is not the incrementer');
  const result = checkIncrementer((i) => inc.readByte0(inc.pageAt(i)), inc.pageCount, { expectedEdgeIndex: inc.cursor });
  return { name: INCREMENTER_ORACLE, ok: result.ok, detail: result.ok ? `${inc.pageCount} pages, edge at ${inc.cursor}` : result.detail };
}
