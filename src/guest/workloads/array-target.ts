/**
 * Guest memory as plain bytes in a Uint8Array, implementing both the workloads' write target
 * and the oracle's page reader. For tests and small simulated guests until the memory layer's
 * backings are adapted; it also counts writes per page (saturating at 2^32 - 1) so tests can
 * see which pages a workload touched.
 */
import { TARGET_PAGE_SIZE } from '../../lib/units.ts';
import { GuestMemoryError } from '../../memory/guest-memory.ts';
import type { PageReader } from '../oracle.ts';
import type { PageWriteTarget } from './types.ts';

export class ArrayPageTarget implements PageWriteTarget, PageReader {
  /** Number of pages. */
  readonly pageCount: number;
  /** Page p occupies bytes [p * 4096, (p + 1) * 4096). */
  readonly bytes: Uint8Array;
  /** writeCounts[p]: writes to page p. */
  readonly writeCounts: Uint32Array;
  /** Optional presence filter (a postcopy destination); every page is present when null. */
  present: ((pageIndex: number) => boolean) | null = null;

  constructor(pageCount: number) {
    this.pageCount = pageCount;
    this.bytes = new Uint8Array(pageCount * TARGET_PAGE_SIZE);
    this.writeCounts = new Uint32Array(pageCount);
  }

  writeByte(pageIndex: number, offsetInPage: number, value: number): void {
    this.check(pageIndex, offsetInPage);
    this.bytes[pageIndex * TARGET_PAGE_SIZE + offsetInPage] = value;
    if (this.writeCounts[pageIndex] !== 0xffffffff) this.writeCounts[pageIndex]++;
  }

  readByte(pageIndex: number, offsetInPage: number): number {
    this.check(pageIndex, offsetInPage);
    return this.bytes[pageIndex * TARGET_PAGE_SIZE + offsetInPage];
  }

  isPresent(pageIndex: number): boolean {
    return this.present === null || this.present(pageIndex);
  }

  copyPageOut(pageIndex: number, out: Uint8Array, outOffset = 0): void {
    this.check(pageIndex, 0);
    out.set(this.bytes.subarray(pageIndex * TARGET_PAGE_SIZE, (pageIndex + 1) * TARGET_PAGE_SIZE), outOffset);
  }

  private check(pageIndex: number, offsetInPage: number): void {
    if (!(pageIndex >= 0 && pageIndex < this.pageCount && offsetInPage >= 0 && offsetInPage < TARGET_PAGE_SIZE)) {
      throw new GuestMemoryError(pageIndex * TARGET_PAGE_SIZE + offsetInPage, 1, this.bytes.length);
    }
  }
}
