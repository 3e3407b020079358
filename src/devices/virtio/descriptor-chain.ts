/**
 * The defensive descriptor-chain walk of the device side. The guest owns the descriptor
 * table and may write anything into it, so every field is checked before it is trusted, and
 * each way a chain can break the rules has its own VirtioError code:
 *
 *   next index beyond the table            VIRTIO_ERR_NEXT_INDEX
 *   a descriptor visited twice in one walk VIRTIO_ERR_DESC_LOOP
 *   more than maxChainDescriptors          VIRTIO_ERR_CHAIN_TOO_LONG   (default: the queue size)
 *   total length above maxTotalLengthBytes VIRTIO_ERR_CHAIN_TOO_LARGE  (default: 2^32 - 1)
 *   a buffer not inside guest memory       VIRTIO_ERR_ADDR_RANGE       (also the indirect table)
 *   a zero-length buffer                   VIRTIO_ERR_ZERO_LENGTH      (QEMU refuses them too)
 *   device-readable after device-writable  VIRTIO_ERR_WRONG_DIRECTION
 *   INDIRECT without the feature           VIRTIO_ERR_INDIRECT_NOT_NEGOTIATED
 *   INDIRECT together with NEXT            VIRTIO_ERR_INDIRECT_WITH_NEXT
 *   table length 0 or not a multiple of 16 VIRTIO_ERR_INDIRECT_BAD_LENGTH
 *   INDIRECT inside an indirect table      VIRTIO_ERR_INDIRECT_NESTED
 *   INDIRECT on a non-head descriptor      VIRTIO_ERR_INDIRECT_MISPLACED
 *
 * The walk is bounded: it reads at most one head descriptor plus maxChainDescriptors more,
 * because a revisit stops it (loop) and so does the length limit. Loop detection is exact: a
 * generation-stamped array for the queue's own table, a Set for an indirect table (whose
 * size the guest chooses). Only an indirect table as the head's single descriptor is
 * accepted, as Linux builds them and as QEMU reads them; the WRITE flag of the descriptor
 * pointing at the table is ignored, as the spec requires.
 */
import type { GuestMemory } from '../../memory/guest-memory.ts';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from './constants.ts';
import { VIRTIO_ERR, VirtioError } from './errors.ts';
import { DESC_SIZE_BYTES } from './ring-layout.ts';

/** One guest buffer of a chain: a guest physical range that lies inside guest memory. */
export interface Segment {
  readonly gpa: number;
  readonly lengthBytes: number;
}

/** What a walk yields: the chain's buffers split by direction, in chain order. */
export interface WalkedChain {
  /** Device-readable buffers (the driver's "out" buffers). */
  readonly readable: Segment[];
  /** Device-writable buffers (the driver's "in" buffers). */
  readonly writable: Segment[];
  /** Sum of the readable lengths. */
  readonly readableLengthBytes: number;
  /** Sum of the writable lengths: the most a used entry may report. */
  readonly writableLengthBytes: number;
  /** Whether the chain came from an indirect table. */
  readonly indirect: boolean;
}

/** Limits of one queue's walker. */
export interface ChainLimits {
  /** Most buffer descriptors in one chain (not counting a head that points at an indirect table). */
  readonly maxChainDescriptors: number;
  /** Most total bytes in one chain. */
  readonly maxTotalLengthBytes: number;
  /** Whether VIRTIO_RING_F_INDIRECT_DESC was negotiated. */
  readonly indirectAllowed: boolean;
}

/** One descriptor as read from guest memory, the 64-bit address kept as two halves. */
interface RawDescriptor {
  addrLow32: number;
  addrHigh32: number;
  lengthBytes: number;
  flags: number;
  next: number;
}

const TWO_32 = 4294967296;

export class DescriptorChainWalker {
  /** Per descriptor of the queue's table, the generation of the last walk that visited it. */
  private readonly visitStamps: Uint32Array;
  /** Generation of the current walk; bumped per walk, stamps cleared when it wraps. */
  private generation = 0;
  /** Scratch descriptor, reused by every read to avoid an allocation per descriptor. */
  private readonly scratch: RawDescriptor = { addrLow32: 0, addrHigh32: 0, lengthBytes: 0, flags: 0, next: 0 };

  constructor(
    /** Guest memory holding the table and the buffers. */
    private readonly mem: GuestMemory,
    /** Address of the queue's descriptor table, already checked to fit in memory. */
    private readonly descGpa: number,
    /** Entries in the queue's descriptor table. */
    private readonly queueSize: number,
    /** The queue's limits. */
    private readonly limits: ChainLimits,
  ) {
    this.visitStamps = new Uint32Array(queueSize);
  }

  /** Walks the chain starting at `headIndex` (< queueSize); throws VirtioError on a broken chain. */
  walk(headIndex: number): WalkedChain {
    const generation = this.nextGeneration();
    let tableGpa = this.descGpa;
    let tableCount = this.queueSize;
    let indirectVisited: Set<number> | null = null;
    let d = this.readDescriptor(tableGpa, headIndex);
    this.visitStamps[headIndex] = generation;

    if ((d.flags & VIRTQ_DESC_F_INDIRECT) !== 0) {
      if (!this.limits.indirectAllowed) {
        throw chainError(VIRTIO_ERR.INDIRECT_NOT_NEGOTIATED, headIndex, 'uses an indirect table, but INDIRECT_DESC was not negotiated');
      }
      if ((d.flags & VIRTQ_DESC_F_NEXT) !== 0) {
        throw chainError(VIRTIO_ERR.INDIRECT_WITH_NEXT, headIndex, 'sets both INDIRECT and NEXT');
      }
      if (d.lengthBytes === 0 || d.lengthBytes % DESC_SIZE_BYTES !== 0) {
        throw chainError(VIRTIO_ERR.INDIRECT_BAD_LENGTH, headIndex, `has an indirect table of ${d.lengthBytes} bytes, not a non-zero multiple of 16`);
      }
      tableGpa = this.checkRange(d, headIndex, 'indirect table');
      tableCount = d.lengthBytes / DESC_SIZE_BYTES;
      indirectVisited = new Set([0]);
      d = this.readDescriptor(tableGpa, 0);
    }

    const readable: Segment[] = [];
    const writable: Segment[] = [];
    let readableLengthBytes = 0;
    let writableLengthBytes = 0;
    let count = 0;
    for (;;) {
      if ((d.flags & VIRTQ_DESC_F_INDIRECT) !== 0) {
        if (indirectVisited !== null) throw chainError(VIRTIO_ERR.INDIRECT_NESTED, headIndex, 'nests an indirect table inside an indirect table');
        throw chainError(VIRTIO_ERR.INDIRECT_MISPLACED, headIndex, 'has INDIRECT on a descriptor that is not the head');
      }
      count++;
      if (count > this.limits.maxChainDescriptors) {
        throw chainError(VIRTIO_ERR.CHAIN_TOO_LONG, headIndex, `is longer than ${this.limits.maxChainDescriptors} descriptors`);
      }
      if (d.lengthBytes === 0) throw chainError(VIRTIO_ERR.ZERO_LENGTH, headIndex, 'has a zero-length buffer');
      const gpa = this.checkRange(d, headIndex, 'buffer');
      if (readableLengthBytes + writableLengthBytes + d.lengthBytes > this.limits.maxTotalLengthBytes) {
        throw chainError(VIRTIO_ERR.CHAIN_TOO_LARGE, headIndex, `holds more than ${this.limits.maxTotalLengthBytes} bytes`);
      }
      if ((d.flags & VIRTQ_DESC_F_WRITE) !== 0) {
        writable.push({ gpa, lengthBytes: d.lengthBytes });
        writableLengthBytes += d.lengthBytes;
      } else {
        if (writable.length > 0) throw chainError(VIRTIO_ERR.WRONG_DIRECTION, headIndex, 'has a device-readable buffer after a device-writable one');
        readable.push({ gpa, lengthBytes: d.lengthBytes });
        readableLengthBytes += d.lengthBytes;
      }
      if ((d.flags & VIRTQ_DESC_F_NEXT) === 0) break;
      const next = d.next;
      if (next >= tableCount) throw chainError(VIRTIO_ERR.NEXT_INDEX, headIndex, `links to descriptor ${next}, beyond a table of ${tableCount}`);
      if (indirectVisited !== null) {
        if (indirectVisited.has(next)) throw chainError(VIRTIO_ERR.DESC_LOOP, headIndex, `loops back to indirect descriptor ${next}`);
        indirectVisited.add(next);
      } else {
        if (this.visitStamps[next] === generation) throw chainError(VIRTIO_ERR.DESC_LOOP, headIndex, `loops back to descriptor ${next}`);
        this.visitStamps[next] = generation;
      }
      d = this.readDescriptor(tableGpa, next);
    }
    return { readable, writable, readableLengthBytes, writableLengthBytes, indirect: indirectVisited !== null };
  }

  /** Reads descriptor `index` of the table at `tableGpa` into the scratch record. */
  private readDescriptor(tableGpa: number, index: number): RawDescriptor {
    const gpa = tableGpa + index * DESC_SIZE_BYTES;
    const d = this.scratch;
    // The masks make the halves unsigned whatever the backing returns.
    d.addrLow32 = this.mem.readLe32(gpa) >>> 0;
    d.addrHigh32 = this.mem.readLe32(gpa + 4) >>> 0;
    d.lengthBytes = this.mem.readLe32(gpa + 8) >>> 0;
    d.flags = this.mem.readLe16(gpa + 12) & 0xffff;
    d.next = this.mem.readLe16(gpa + 14) & 0xffff;
    return d;
  }

  /** Returns the descriptor's address if [addr, addr + len) lies in guest memory; else throws. */
  private checkRange(d: RawDescriptor, headIndex: number, what: string): number {
    // A high half of 2^21 or more puts the address beyond 2^53, far beyond any guest memory.
    const gpa = d.addrHigh32 < 0x200000 ? d.addrHigh32 * TWO_32 + d.addrLow32 : Number.POSITIVE_INFINITY;
    if (gpa + d.lengthBytes > this.mem.sizeBytes) {
      const hex = `0x${d.addrHigh32.toString(16)}${d.addrLow32.toString(16).padStart(8, '0')}`;
      throw chainError(VIRTIO_ERR.ADDR_RANGE, headIndex, `has a ${what} at ${hex} (${d.lengthBytes} bytes) outside ${this.mem.sizeBytes} bytes of guest memory`);
    }
    return gpa;
  }

  private nextGeneration(): number {
    this.generation = (this.generation + 1) >>> 0;
    if (this.generation === 0) {
      this.visitStamps.fill(0);
      this.generation = 1;
    }
    return this.generation;
  }
}

function chainError(code: VirtioError['code'], headIndex: number, what: string): VirtioError {
  return new VirtioError(code, `The descriptor chain at head ${headIndex} ${what}`);
}
