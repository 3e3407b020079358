/**
 * The shape every invariant checker returns (DESIGN §4): the invariant's name, whether it held,
 * and one sentence saying what was checked or the first thing that broke. Checkers are pure
 * functions over a run's final state (see each checker's input type); they never throw for a
 * violation, they report it.
 */

/** The verdict of one invariant over one run. */
export interface InvariantVerdict {
  /** Stable kebab-case name, e.g. `memory-equality`. */
  readonly name: string;
  /** True when the invariant held (or does not apply to this run; the detail says which). */
  readonly ok: boolean;
  /** What was checked, or the first violation found. */
  readonly detail: string;
}

/** Pages whose content does not matter (free in the guest at switchover). */
export interface PageFilter {
  has(pageIndex: number): boolean;
}

/** At most this many pages are named in a detail sentence. */
export const DETAIL_PAGES_MAX = 5;

/** "p1, p2, p3 and 12 more" for a detail sentence. */
export function listPages(pages: readonly number[], total: number = pages.length): string {
  const shown = pages.slice(0, DETAIL_PAGES_MAX).join(', ');
  return total > DETAIL_PAGES_MAX ? `${shown} and ${total - DETAIL_PAGES_MAX} more` : shown;
}

/** A verdict for an invariant that does not apply to the run. */
export function notApplicable(name: string, why: string): InvariantVerdict {
  return { name, ok: true, detail: `not applicable: ${why}` };
}
