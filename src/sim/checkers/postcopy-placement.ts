/**
 * Invariant 2 (DESIGN §4): in postcopy no page is placed twice on the destination, and every
 * fault is served. Also DESIGN §5's "a destination never runs a guest with a wrong page":
 * when a precopy destination starts its guest, every page must have arrived except those free
 * in the guest (hinted and held, or unplugged).
 *
 * The world counts placements by watching the destination's page store while the stream is
 * being loaded after the postcopy switch (a store write inside `onBytes` is a placement), and
 * records every vCPU fault with the time its page became ready.
 */
import type { Range } from '../../lib/range-table.ts';
import { listPages, type InvariantVerdict, type PageFilter } from './verdict.ts';

export const POSTCOPY_PLACEMENT = 'postcopy-placement';

/** One fault of a destination vCPU. */
export interface FaultRecord {
  /** The page the vCPU touched. */
  readonly pageIndex: number;
  /** When it faulted, ns. */
  readonly faultNs: number;
}

/** What the checker reads. */
export interface PostcopyPlacementInput {
  /** Whether the run switched to postcopy. */
  readonly postcopy: boolean;
  /** Pages placed more than once after the switch, ascending (at most a bounded list). */
  readonly duplicatePlacements: readonly number[];
  /** How many pages were placed more than once (the list may be shorter). */
  readonly duplicatePlacementCount: number;
  /** Faults raised by destination vCPUs. */
  readonly faultCount: number;
  /** Faults whose page never became ready (vCPUs still waiting at the end). */
  readonly unservedFaults: readonly FaultRecord[];
  /**
   * Pages not yet arrived when a precopy destination started its guest, as ranges; null when
   * the guest started in postcopy (missing pages fault) or never started.
   */
  readonly missingAtPrecopyResume: readonly Range[] | null;
  /** Pages free in the guest at switchover. */
  readonly allowedToDiffer: PageFilter;
}

/** Checks invariant 2; see the module comment. */
export function checkPostcopyPlacement(input: PostcopyPlacementInput): InvariantVerdict {
  const problems: string[] = [];
  if (input.duplicatePlacementCount > 0) {
    problems.push(`${input.duplicatePlacementCount} pages placed twice (${listPages(input.duplicatePlacements, input.duplicatePlacementCount)})`);
  }
  const unserved = input.unservedFaults.map((f) => f.pageIndex);
  if (unserved.length > 0) problems.push(`${unserved.length} faults never served (pages ${listPages(unserved)})`);
  let missing = 0;
  const missingPages: number[] = [];
  for (const range of input.missingAtPrecopyResume ?? []) {
    for (let p = range.start; p < range.end; p++) {
      if (input.allowedToDiffer.has(p)) continue;
      missing++;
      if (missingPages.length < 16) missingPages.push(p);
    }
  }
  if (missing > 0) problems.push(`the destination guest started with ${missing} pages missing (${listPages(missingPages, missing)})`);
  if (problems.length > 0) return { name: POSTCOPY_PLACEMENT, ok: false, detail: problems.join('; ') };
  const mode = input.postcopy ? 'postcopy: no page placed twice' : 'precopy: every needed page present at resume';
  return { name: POSTCOPY_PLACEMENT, ok: true, detail: `${mode}; ${input.faultCount} faults, all served` };
}
