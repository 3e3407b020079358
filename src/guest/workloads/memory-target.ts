/**
 * Adapts any GuestMemory (a bytes or compact backing, or the memory layer's dirty-tracking
 * wrapper, which is what a running simulated guest should write through) to the workloads'
 * PageWriteTarget: page p, offset o is guest physical address p * 4096 + o.
 */
import type { GuestMemory } from '../../memory/guest-memory.ts';
import { TARGET_PAGE_SIZE } from '../../lib/units.ts';
import type { PageWriteTarget } from './types.ts';

export class GuestMemoryTarget implements PageWriteTarget {
  /** Guest RAM in pages. */
  readonly pageCount: number;
  /** The memory written through. */
  private readonly memory: GuestMemory;
  /** Presence of a page (a postcopy destination); null when every page is present. */
  private readonly present: ((pageIndex: number) => boolean) | null;

  constructor(memory: GuestMemory, present: ((pageIndex: number) => boolean) | null = null) {
    this.memory = memory;
    this.pageCount = Math.floor(memory.sizeBytes / TARGET_PAGE_SIZE);
    this.present = present;
  }

  writeByte(pageIndex: number, offsetInPage: number, value: number): void {
    this.memory.writeU8(pageIndex * TARGET_PAGE_SIZE + offsetInPage, value);
  }

  readByte(pageIndex: number, offsetInPage: number): number {
    return this.memory.readU8(pageIndex * TARGET_PAGE_SIZE + offsetInPage);
  }

  isPresent(pageIndex: number): boolean {
    return this.present === null || this.present(pageIndex);
  }
}
