/**
 * Raw access to one split virtqueue's three areas in guest memory, from the driver's seat:
 * lay the areas out, then read or write any field with no rule enforced. The driver
 * (split-queue-driver.ts) builds on it, and tests use it directly to write hostile rings, as
 * rust-vmm's MockSplitQueue is used: descriptor loops, addresses past the end of memory,
 * avail indices that jump. Writes here bypass the driver's own bookkeeping.
 */
import type { GuestMemory } from '../../memory/guest-memory.ts';
import {
  AVAIL_ALIGN_BYTES, DESC_ALIGN_BYTES, DESC_SIZE_BYTES, RING_FLAGS_OFFSET, RING_IDX_OFFSET, type SplitQueueLayout,
  USED_ALIGN_BYTES, availEntryOffset, availEventOffset, availRingSizeBytes, descTableSizeBytes, isValidQueueSize,
  usedElemOffset, usedEventOffset, usedRingSizeBytes,
} from '../../devices/virtio/ring-layout.ts';
import type { GpaAllocator } from './bump-allocator.ts';

/** A descriptor's fields. `addr` may be a bigint to write any 64-bit value. */
export interface DescriptorFields {
  readonly addr: number | bigint;
  readonly len: number;
  readonly flags: number;
  readonly next: number;
}

/** A used-ring element as read back. */
export interface UsedElem {
  readonly id: number;
  readonly len: number;
}

const TWO_32 = 4294967296;

export class SplitRing {
  constructor(
    /** Guest memory the areas live in. */
    readonly mem: GuestMemory,
    /** Where the areas are. */
    readonly layout: SplitQueueLayout,
  ) {}

  /** Allocates the three areas with the spec's alignments and zeroes them. */
  static layOut(mem: GuestMemory, allocator: GpaAllocator, queueSize: number): SplitRing {
    if (!isValidQueueSize(queueSize)) throw new RangeError(`Queue size ${queueSize} is not a power of two in 1..32768`);
    const descGpa = allocator.allocate(descTableSizeBytes(queueSize), DESC_ALIGN_BYTES);
    const availGpa = allocator.allocate(availRingSizeBytes(queueSize), AVAIL_ALIGN_BYTES);
    const usedGpa = allocator.allocate(usedRingSizeBytes(queueSize), USED_ALIGN_BYTES);
    const ring = new SplitRing(mem, { queueSize, descGpa, availGpa, usedGpa });
    ring.zero();
    return ring;
  }

  get queueSize(): number {
    return this.layout.queueSize;
  }

  /** Zeroes the descriptor table and both rings. */
  zero(): void {
    const { queueSize, descGpa, availGpa, usedGpa } = this.layout;
    this.mem.write(descGpa, new Uint8Array(descTableSizeBytes(queueSize)));
    this.mem.write(availGpa, new Uint8Array(availRingSizeBytes(queueSize)));
    this.mem.write(usedGpa, new Uint8Array(usedRingSizeBytes(queueSize)));
  }

  /** Writes descriptor `index` of the queue's table (any index the table holds). */
  writeDescriptor(index: number, desc: DescriptorFields): void {
    this.writeDescriptorAt(this.layout.descGpa + index * DESC_SIZE_BYTES, desc);
  }

  /** Writes a descriptor at any gpa, e.g. into an indirect table. */
  writeDescriptorAt(gpa: number, desc: DescriptorFields): void {
    let low: number;
    let high: number;
    if (typeof desc.addr === 'bigint') {
      low = Number(desc.addr & 0xffffffffn);
      high = Number((desc.addr >> 32n) & 0xffffffffn);
    } else {
      low = desc.addr >>> 0;
      high = Math.floor(desc.addr / TWO_32) >>> 0;
    }
    this.mem.writeLe32(gpa, low);
    this.mem.writeLe32(gpa + 4, high);
    this.mem.writeLe32(gpa + 8, desc.len >>> 0);
    this.mem.writeLe16(gpa + 12, desc.flags & 0xffff);
    this.mem.writeLe16(gpa + 14, desc.next & 0xffff);
  }

  /** Reads descriptor `index` of the queue's table. */
  readDescriptor(index: number): DescriptorFields {
    const gpa = this.layout.descGpa + index * DESC_SIZE_BYTES;
    const addr = (BigInt(this.mem.readLe32(gpa + 4) >>> 0) << 32n) | BigInt(this.mem.readLe32(gpa) >>> 0);
    return { addr, len: this.mem.readLe32(gpa + 8) >>> 0, flags: this.mem.readLe16(gpa + 12), next: this.mem.readLe16(gpa + 14) };
  }

  setAvailFlags(flags: number): void {
    this.mem.writeLe16(this.layout.availGpa + RING_FLAGS_OFFSET, flags & 0xffff);
  }

  readAvailFlags(): number {
    return this.mem.readLe16(this.layout.availGpa + RING_FLAGS_OFFSET) & 0xffff;
  }

  setAvailIdx(idx: number): void {
    this.mem.writeLe16(this.layout.availGpa + RING_IDX_OFFSET, idx & 0xffff);
  }

  readAvailIdx(): number {
    return this.mem.readLe16(this.layout.availGpa + RING_IDX_OFFSET) & 0xffff;
  }

  /** Writes avail.ring[slot] (slot taken mod N). */
  setAvailEntry(slot: number, headIndex: number): void {
    this.mem.writeLe16(this.layout.availGpa + availEntryOffset(slot & (this.queueSize - 1)), headIndex & 0xffff);
  }

  setUsedEvent(idx: number): void {
    this.mem.writeLe16(this.layout.availGpa + usedEventOffset(this.queueSize), idx & 0xffff);
  }

  readUsedEvent(): number {
    return this.mem.readLe16(this.layout.availGpa + usedEventOffset(this.queueSize)) & 0xffff;
  }

  readUsedFlags(): number {
    return this.mem.readLe16(this.layout.usedGpa + RING_FLAGS_OFFSET) & 0xffff;
  }

  readUsedIdx(): number {
    return this.mem.readLe16(this.layout.usedGpa + RING_IDX_OFFSET) & 0xffff;
  }

  /** Reads used.ring[slot] (slot taken mod N). */
  readUsedElem(slot: number): UsedElem {
    const gpa = this.layout.usedGpa + usedElemOffset(slot & (this.queueSize - 1));
    return { id: this.mem.readLe32(gpa) >>> 0, len: this.mem.readLe32(gpa + 4) >>> 0 };
  }

  readAvailEvent(): number {
    return this.mem.readLe16(this.layout.usedGpa + availEventOffset(this.queueSize)) & 0xffff;
  }

  /** Device-side writes, for tests of a driver facing a hostile device. */
  writeUsedElem(slot: number, elem: UsedElem): void {
    const gpa = this.layout.usedGpa + usedElemOffset(slot & (this.queueSize - 1));
    this.mem.writeLe32(gpa, elem.id >>> 0);
    this.mem.writeLe32(gpa + 4, elem.len >>> 0);
  }

  setUsedIdx(idx: number): void {
    this.mem.writeLe16(this.layout.usedGpa + RING_IDX_OFFSET, idx & 0xffff);
  }
}
