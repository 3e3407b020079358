/**
 * Page-by-page comparison of two guest RAM dumps (a port of guest-lab's ramdiff.py `compare`):
 * every 4 KiB page is `same`, or differs as
 *   src_zero      the source page is all zero, the destination's is not (under init_on_alloc=1:
 *                 a block the balloon driver zeroed and holds for a hint; free, harmless)
 *   dst_zero      the destination page is all zero (never sent), the source's is not
 *   both_nonzero  both non-zero and different: the destination holds an older version of a
 *                 page the source guest wrote (a stale page)
 * and differing pages are grouped into runs of one category. Besides, the source's own zero pages
 * are counted, and their runs of at least ZERO_RUN_PAGES_MIN pages kept: the guest's layout
 * (where its boot data leaves zero pages), which the scan meets as cheap pages.
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

/** A run of the source's zero pages: first page frame number, length in pages. */
export interface ZeroRun {
  readonly firstPage: number;
  pageCount: number;
}

/** The shortest run of source zero pages kept in `sourceZero.runs`. */
export const ZERO_RUN_PAGES_MIN = 32;

export interface RamDiff {
  readonly pages: Record<'same' | DiffCategory, number>;
  readonly ranges: readonly DiffRange[];
  /** The source's zero pages, and their runs of ZERO_RUN_PAGES_MIN or more, in address order. */
  readonly sourceZero: { readonly pages: number; readonly runs: readonly ZeroRun[] };
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
  private sourceZeroPages = 0;
  private readonly zeroRuns: ZeroRun[] = [];
  /** The run of source zero pages that ends at nextPage, or null. */
  private zeroRun: ZeroRun | null = null;

  /** Compares the next chunk of each dump; both hold the same whole number of pages. */
  push(source: Uint8Array, destination: Uint8Array): void {
    if (source.length !== destination.length || source.length % TARGET_PAGE_SIZE !== 0) {
      throw new RamDiffError(`chunks must be equal and whole pages: source ${source.length} bytes, destination ${destination.length}`);
    }
    for (let off = 0; off < source.length; off += TARGET_PAGE_SIZE) {
      const end = off + TARGET_PAGE_SIZE;
      const pfn = this.nextPage++;
      const sourceZero = isZero(source, off, end);
      this.countSourceZero(pfn, sourceZero);
      if (pageEqual(source, destination, off, end)) {
        this.pages.same++;
        continue;
      }
      const category: DiffCategory = sourceZero ? 'src_zero' : isZero(destination, off, end) ? 'dst_zero' : 'both_nonzero';
      this.pages[category]++;
      const last = this.ranges.at(-1);
      if (last !== undefined && last.category === category && last.firstPage + last.pageCount === pfn) last.pageCount++;
      else this.ranges.push({ firstPage: pfn, pageCount: 1, category });
    }
  }

  result(): RamDiff {
    const runs = [...this.zeroRuns, ...(this.zeroRun !== null && this.zeroRun.pageCount >= ZERO_RUN_PAGES_MIN ? [this.zeroRun] : [])];
    return {
      pages: { ...this.pages },
      ranges: this.ranges.map((r) => ({ ...r })),
      sourceZero: { pages: this.sourceZeroPages, runs: runs.map((r) => ({ ...r })) },
    };
  }

  private countSourceZero(pfn: number, zero: boolean): void {
    if (zero) {
      this.sourceZeroPages++;
      if (this.zeroRun === null) this.zeroRun = { firstPage: pfn, pageCount: 1 };
      else this.zeroRun.pageCount++;
      return;
    }
    if (this.zeroRun !== null && this.zeroRun.pageCount >= ZERO_RUN_PAGES_MIN) this.zeroRuns.push(this.zeroRun);
    this.zeroRun = null;
  }
}

/** `0x8de000+1826` for a run of source zero pages (guest-physical address, pages). */
export function zeroRunText(r: ZeroRun): string {
  return `0x${(r.firstPage * TARGET_PAGE_SIZE).toString(16)}+${r.pageCount}`;
}

/** `0x1065000+1 both_nonzero` for each range (guest-physical address, pages). */
export function rangeText(r: DiffRange): string {
  return `0x${(r.firstPage * TARGET_PAGE_SIZE).toString(16)}+${r.pageCount} ${r.category}`;
}
