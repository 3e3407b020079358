/**
 * Page-by-page comparison of two guest RAM dumps (a port of guest-lab's ramdiff.py `compare`):
 * every 4 KiB page is `same`, or differs as
 *   src_zero      the source page is all zero, the destination's is not (under init_on_alloc=1:
 *                 a block the balloon driver zeroed and holds for a hint; free, harmless)
 *   dst_zero      the destination page is all zero (never sent), the source's is not
 *   both_nonzero  both non-zero and different: the destination holds an older version of a
 *                 page the source guest wrote (a stale page)
 * and differing pages are grouped into runs of one category.
 *
 * A push parser: feed equal-length chunks of both dumps in order (`push`), then `result`.
 */
import { TARGET_PAGE_SIZE } from '../../lib/units.ts';

export type DiffCategory = 'src_zero' | 'dst_zero' | 'both_nonzero';
export const DIFF_CATEGORIES: readonly DiffCategory[] = ['src_zero', 'dst_zero', 'both_nonzero'];

/** A run of differing pages of one category: first page frame number, length in pages. */
export interface DiffRange {
  readonly firstPage: number;
  pageCount: number;
  readonly category: DiffCategory;
}

export interface RamDiff {
  readonly pages: Record<'same' | DiffCategory, number>;
  readonly ranges: readonly DiffRange[];
}

export class RamDiffError extends Error {
  override name = 'RamDiffError';
}

function isZero(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

function pageEqual(a: Uint8Array, b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class RamDiffer {
  private readonly pages: Record<'same' | DiffCategory, number> = { same: 0, src_zero: 0, dst_zero: 0, both_nonzero: 0 };
  private readonly ranges: DiffRange[] = [];
  private nextPage = 0;

  /** Compares the next chunk of each dump; both hold the same whole number of pages. */
  push(source: Uint8Array, destination: Uint8Array): void {
    if (source.length !== destination.length || source.length % TARGET_PAGE_SIZE !== 0) {
      throw new RamDiffError(`chunks must be equal and whole pages: source ${source.length} bytes, destination ${destination.length}`);
    }
    for (let off = 0; off < source.length; off += TARGET_PAGE_SIZE) {
      const end = off + TARGET_PAGE_SIZE;
      const pfn = this.nextPage++;
      if (pageEqual(source, destination, off, end)) {
        this.pages.same++;
        continue;
      }
      const category: DiffCategory = isZero(source, off, end) ? 'src_zero' : isZero(destination, off, end) ? 'dst_zero' : 'both_nonzero';
      this.pages[category]++;
      const last = this.ranges.at(-1);
      if (last !== undefined && last.category === category && last.firstPage + last.pageCount === pfn) last.pageCount++;
      else this.ranges.push({ firstPage: pfn, pageCount: 1, category });
    }
  }

  result(): RamDiff {
    return { pages: { ...this.pages }, ranges: this.ranges.map((r) => ({ ...r })) };
  }
}

/** `0x1065000+1 both_nonzero` for each range (guest-physical address, pages). */
export function rangeText(r: DiffRange): string {
  return `0x${(r.firstPage * TARGET_PAGE_SIZE).toString(16)}+${r.pageCount} ${r.category}`;
}
