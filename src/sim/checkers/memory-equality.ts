/**
 * Invariant 1 (DESIGN §4): at completion every destination page equals the source's page at
 * switchover, except pages free in the guest at switchover (hinted and held, or unplugged),
 * whose content does not matter.
 *
 * How the run supplies "the source at switchover": the source guest never runs again after
 * the switch, so the source store at the end of the run is the switchover image. The
 * destination guest, once it runs, changes its pages, so the world audits each destination
 * page just before its first guest write (`firstWriteMismatch`: pages that differed from the
 * source then) and the final comparison skips those pages (`writtenAfterResume`).
 *
 * Compact stores compare by version, so a 1 TiB guest compares in about a second.
 */
import type { Bitmap } from '../../lib/bitmap.ts';
import { CompactBacking } from '../../memory/compact-backing.ts';
import type { PageStore } from '../../memory/page-store.ts';
import { listPages, notApplicable, type InvariantVerdict, type PageFilter } from './verdict.ts';

export const MEMORY_EQUALITY = 'memory-equality';

/** What the checker reads. */
export interface MemoryEqualityInput {
  /** Null when the migration did not complete (nothing to compare); the reason. */
  readonly notApplicableReason: string | null;
  /** The source's pages (frozen since the switchover). */
  readonly source: PageStore;
  /** The destination's pages at the end of the run. */
  readonly destination: PageStore;
  /** Pages the destination guest wrote after it started (audited at their first write). */
  readonly writtenAfterResume: Bitmap | null;
  /** Pages that differed from the source when the destination guest first wrote them. */
  readonly firstWriteMismatch: Bitmap | null;
  /** Pages free in the guest at switchover (hinted and held, or unplugged). */
  readonly allowedToDiffer: PageFilter;
}

/** Checks invariant 1; see the module comment. */
export function checkMemoryEquality(input: MemoryEqualityInput): InvariantVerdict {
  if (input.notApplicableReason !== null) return notApplicable(MEMORY_EQUALITY, input.notApplicableReason);
  const { source, destination, writtenAfterResume, firstWriteMismatch, allowedToDiffer } = input;
  if (source.pageCount !== destination.pageCount) {
    return { name: MEMORY_EQUALITY, ok: false, detail: `page counts differ: source ${source.pageCount}, destination ${destination.pageCount}` };
  }
  // Two compact stores: equal versions are equal pages (unless both are exact pages), so the
  // version arrays are compared directly and only the rest goes through pageEquals.
  const fast = source instanceof CompactBacking && destination instanceof CompactBacking && source.versionBits === destination.versionBits;
  const sourceVersions = fast ? source.versions : null;
  const destinationVersions = fast ? destination.versions : null;
  const exactMarker = fast ? 2 ** source.versionBits - 1 : -1;
  const bad: number[] = [];
  let badCount = 0;
  let compared = 0;
  let audited = 0;
  let allowed = 0;
  const writtenWords = writtenAfterResume === null ? null : writtenAfterResume.words;
  for (let p = 0; p < source.pageCount; p++) {
    // Fast skip (two compact stores): 32 pages at a word boundary, none written after resume,
    // equal plain versions in both stores. Anything else goes page by page below.
    if (sourceVersions !== null && destinationVersions !== null && (p & 31) === 0 && p + 32 <= source.pageCount &&
      (writtenWords === null || writtenWords[p >>> 5] === 0)) {
      let i = p;
      const stop = p + 32;
      while (i < stop) {
        const v = sourceVersions[i];
        if (v !== destinationVersions[i] || v === exactMarker) break;
        i++;
      }
      if (i === stop) {
        compared += 32;
        p += 31;
        continue;
      }
    }
    let same: boolean;
    if (writtenAfterResume !== null && writtenAfterResume.test(p)) {
      audited++;
      same = firstWriteMismatch === null || !firstWriteMismatch.test(p);
    } else {
      compared++;
      if (sourceVersions !== null && destinationVersions !== null) {
        const v = sourceVersions[p];
        same = (v === destinationVersions[p] && v !== exactMarker) || destination.pageEquals(source, p);
      } else {
        same = destination.pageEquals(source, p);
      }
    }
    if (same) continue;
    if (allowedToDiffer.has(p)) {
      allowed++;
      continue;
    }
    badCount++;
    if (bad.length < 64) bad.push(p);
  }
  const summary = `${compared} pages compared at the end, ${audited} audited at their first destination write, ${allowed} free in the guest and different`;
  if (badCount === 0) return { name: MEMORY_EQUALITY, ok: true, detail: summary };
  return { name: MEMORY_EQUALITY, ok: false, detail: `${badCount} destination pages differ from the source at switchover (${listPages(bad, badCount)}); ${summary}` };
}
