/**
 * Checks run on guest memory after a migration (DESIGN §4 items 1 and 7).
 *
 * checkIncrementer: the incrementer workload walks its pages in order adding one to byte 0,
 * so at any instant the pages before its cursor hold v + 1 and the rest hold v (mod 256).
 * Reading byte 0 in page order must therefore show no change at all (the cursor is at page 0)
 * or exactly one change, a step down by one: the edge. Anything else (a step up, a jump of
 * more than one, a second edge) means a page was lost, stale or written by someone else. This
 * is QEMU's check_guest_ram (tests/qtest/migration-test.c). Cyclically the edge is the only
 * step down; the implied step up from the last page to the first is not counted. Given the
 * incrementer's cursor at the instant memory was frozen, the check also requires the edge to be
 * exactly there, which catches a lost write to the page just before the cursor.
 *
 * comparePages: page-by-page equality of two memories, skipping pages allowed to differ (free
 * in the guest: hinted, unplugged), listing the first mismatches.
 */

export interface IncrementerCheck {
  /** True when the memory is a state the incrementer could have left. */
  readonly ok: boolean;
  /** Steps down by one in page order. */
  readonly edges: number;
  /** Index of the page just after the first edge, or -1 when there is none. */
  readonly edgeIndex: number;
  /** Changes between neighbours that are neither equal nor an edge. */
  readonly badSteps: number;
  /** Byte 0 of the first page (v + 1 when there is an edge, else v). */
  readonly firstValue: number;
  /** A human-readable account of what was wrong, or 'ok'. */
  readonly detail: string;
}

export interface IncrementerCheckOptions {
  /** The incrementer's cursor when memory was frozen: the edge must be there (0: no edge). */
  readonly expectedEdgeIndex?: number;
}

/** At most this many problems are spelled out in a detail string. */
export const ORACLE_DETAIL_PROBLEMS_MAX = 5;

/**
 * Checks byte 0 of pages 0..pageCount-1, read in the incrementer's page order through
 * `readByte(index)` (the caller maps index to page frame, e.g. via PageSet.pageAt).
 */
export function checkIncrementer(readByte: (index: number) => number, pageCount: number, options: IncrementerCheckOptions = {}): IncrementerCheck {
  const problems: string[] = [];
  const note = (text: string): void => {
    if (problems.length < ORACLE_DETAIL_PROBLEMS_MAX) problems.push(text);
  };
  if (pageCount === 0) return { ok: true, edges: 0, edgeIndex: -1, badSteps: 0, firstValue: 0, detail: 'ok' };
  const firstValue = readByte(0) & 0xff;
  let previous = firstValue;
  let edges = 0;
  let edgeIndex = -1;
  let badSteps = 0;
  for (let i = 1; i < pageCount; i++) {
    const value = readByte(i) & 0xff;
    if (value === previous) continue;
    if (value === ((previous + 255) & 0xff)) {
      edges++;
      if (edgeIndex < 0) edgeIndex = i;
      else note(`page ${i}: second edge (${previous} -> ${value}), first at page ${edgeIndex}`);
    } else {
      badSteps++;
      note(`page ${i}: ${previous} -> ${value}`);
    }
    previous = value;
  }
  const expected = options.expectedEdgeIndex;
  let edgeMisplaced = false;
  if (expected !== undefined && badSteps === 0 && edges <= 1) {
    const actual = edgeIndex < 0 ? 0 : edgeIndex;
    if (actual !== expected) {
      edgeMisplaced = true;
      note(`edge at page ${actual}, incrementer cursor at page ${expected}`);
    }
  }
  const ok = badSteps === 0 && edges <= 1 && !edgeMisplaced;
  const summary = `${edges} edge(s), ${badSteps} bad step(s) over ${pageCount} pages`;
  return { ok, edges, edgeIndex, badSteps, firstValue, detail: ok ? 'ok' : `${summary}: ${problems.join('; ')}` };
}

/**
 * Read access to a memory's pages for comparison. The memory layer's PageStore (bytes or
 * compact backing) satisfies it as is.
 */
export interface PageReader {
  readonly pageCount: number;
  /** Copies the page's 4096 bytes into out[outOffset ..]. */
  copyPageOut(pageIndex: number, out: Uint8Array, outOffset?: number): void;
}

/** Pages allowed to differ; a RangeTable or a Set<number> fits. */
export interface PageFilter {
  has(pageIndex: number): boolean;
}

export interface ComparePagesOptions {
  /** Pages whose content does not matter (free in the guest: hinted, unplugged). */
  readonly allowedToDiffer?: PageFilter;
  /** Most mismatching pages listed (all are counted). Default 64. */
  readonly listMax?: number;
  /**
   * A faster exact equality for page p of the two memories, used instead of copying bytes;
   * for two PageStores pass `(p) => a.pageEquals(b, p)` (compact pages compare by version).
   */
  readonly pageEquals?: (pageIndex: number) => boolean;
}

export interface PageComparison {
  /** Pages compared. */
  readonly pagesCompared: number;
  /** Pages skipped because they were allowed to differ. */
  readonly pagesSkipped: number;
  /** Pages that differ. */
  readonly mismatchCount: number;
  /** The first mismatching pages, ascending, at most listMax. */
  readonly mismatches: readonly number[];
}

/** Two memories of different sizes were compared. */
export class OracleError extends Error {
  override name = 'OracleError';
}

const PAGE_SIZE_BYTES = 4096;
export const COMPARE_LIST_MAX_DEFAULT = 64;

/** Compares every page of `a` with the same page of `b`, except those allowed to differ. */
export function comparePages(a: PageReader, b: PageReader, options: ComparePagesOptions = {}): PageComparison {
  if (a.pageCount !== b.pageCount) throw new OracleError(`page counts differ: ${a.pageCount} vs ${b.pageCount}`);
  const { allowedToDiffer, pageEquals } = options;
  const listMax = options.listMax ?? COMPARE_LIST_MAX_DEFAULT;
  const pageA = new Uint8Array(PAGE_SIZE_BYTES);
  const pageB = new Uint8Array(PAGE_SIZE_BYTES);
  const wordsA = new Uint32Array(pageA.buffer);
  const wordsB = new Uint32Array(pageB.buffer);
  const mismatches: number[] = [];
  let compared = 0;
  let skipped = 0;
  let mismatchCount = 0;
  for (let p = 0; p < a.pageCount; p++) {
    if (allowedToDiffer !== undefined && allowedToDiffer.has(p)) {
      skipped++;
      continue;
    }
    compared++;
    let same: boolean;
    if (pageEquals !== undefined) {
      same = pageEquals(p);
    } else {
      a.copyPageOut(p, pageA, 0);
      b.copyPageOut(p, pageB, 0);
      same = wordsEqual(wordsA, wordsB);
    }
    if (!same) {
      mismatchCount++;
      if (mismatches.length < listMax) mismatches.push(p);
    }
  }
  return { pagesCompared: compared, pagesSkipped: skipped, mismatchCount, mismatches };
}

function wordsEqual(x: Uint32Array, y: Uint32Array): boolean {
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
