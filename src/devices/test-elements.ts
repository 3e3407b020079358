/**
 * Test helper for the balloon and virtio-mem tests: builds QueueElements the way a driver
 * would lay out buffers, placing device-readable payloads in a scratch area of guest memory.
 * Production code never imports this file.
 */
import type { GuestMemory } from '../memory/guest-memory.ts';
import type { BufferSegment, QueueElement } from './element-io.ts';

export class ElementBuilder {
  /** The next free scratch address. */
  private nextGpa: number;
  /** The next head index handed out. */
  private nextHead = 0;

  constructor(
    private readonly memory: GuestMemory,
    /** Start of a scratch area the test does not use otherwise. */
    scratchGpa: number,
  ) {
    this.nextGpa = scratchGpa;
  }

  /** Places `bytes` in scratch memory and returns the segment that covers them. */
  place(bytes: Uint8Array): BufferSegment {
    const gpa = this.nextGpa;
    this.memory.write(gpa, bytes);
    this.nextGpa += Math.max(16, Math.ceil(bytes.length / 16) * 16);
    return { gpa, lengthBytes: bytes.length };
  }

  /** Reserves `lengthBytes` of scratch memory for a device-writable segment. */
  reserve(lengthBytes: number): BufferSegment {
    const gpa = this.nextGpa;
    this.nextGpa += Math.max(16, Math.ceil(lengthBytes / 16) * 16);
    return { gpa, lengthBytes };
  }

  /** An element with the given readable payloads (placed in scratch) and writable segments. */
  element(readable: readonly Uint8Array[], writable: readonly BufferSegment[] = []): QueueElement {
    return { head: this.nextHead++, readable: readable.map((b) => this.place(b)), writable };
  }
}

/** Little-endian u32 array bytes (PFN lists, command ids). */
export function le32s(...values: number[]): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setUint32(i * 4, v >>> 0, true));
  return bytes;
}

/** A DiscardSink / HintSink recorder. */
export class RangeRecorder {
  /** Every range received, in order. */
  readonly ranges: Array<{ gpa: number; lengthBytes: number; cmdId?: number }> = [];

  discard(gpa: number, lengthBytes: number): void {
    this.ranges.push({ gpa, lengthBytes });
  }

  onHint(gpa: number, lengthBytes: number, cmdId: number): void {
    this.ranges.push({ gpa, lengthBytes, cmdId });
  }
}
