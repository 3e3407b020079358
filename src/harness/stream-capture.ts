/**
 * A StreamSink for interop tests that rebuilds guest RAM from a decoded stream: it allocates
 * one zero-filled buffer per block of the (top-level) MEM_SIZE list, applies PAGE and ZERO
 * records, counts them, and keeps every non-RAM record (device sections in particular) for
 * assertions. It rejects records for unknown blocks or out-of-range offsets, so a decoder bug
 * cannot hide behind a silently ignored page.
 */
import type { RamBlockInfo, RamBlockRef, StreamRecord, StreamSink } from '../format/stream-types.ts';

export interface CapturedDevice {
  readonly idstr: string;
  readonly instanceId: number;
  readonly versionId: number;
  readonly state: unknown;
}

/** Thrown by the capture sink when the decoder hands it an impossible RAM record. */
export class CaptureError extends Error {
  override name = 'CaptureError';
}

export class StreamCapture implements StreamSink {
  /** Every record except RAM pages, in order. */
  readonly records: StreamRecord[] = [];
  /** The top-level MEM_SIZE list, or null before it arrived. */
  blocks: readonly RamBlockInfo[] | null = null;
  readonly devices: CapturedDevice[] = [];
  pageRecords = 0;
  zeroRecords = 0;
  /** Target page size: 4 KiB unless the CONFIGURATION record names other page bits. */
  pageSizeBytes = 4096;
  private readonly ram = new Map<string, Uint8Array>();

  record(record: StreamRecord): void {
    this.records.push(record);
    if (record.kind === 'configuration' && record.configuration.targetPageBits !== undefined) {
      this.pageSizeBytes = 2 ** record.configuration.targetPageBits;
    } else if (record.kind === 'ram-blocks' && record.depth === 0) {
      this.blocks = record.blocks;
      for (const block of record.blocks) {
        if (!this.ram.has(block.name)) this.ram.set(block.name, new Uint8Array(block.usedLengthBytes));
      }
    } else if (record.kind === 'device') {
      const { idstr, instanceId, versionId } = record.header;
      this.devices.push({ idstr, instanceId, versionId, state: record.state });
    }
  }

  ramPage(block: RamBlockRef, offsetBytes: number, data: Uint8Array): void {
    this.target(block, offsetBytes, data.length).set(data, offsetBytes);
    this.pageRecords++;
  }

  ramZero(block: RamBlockRef, offsetBytes: number, fill: number): void {
    // A ZERO record covers one target page.
    const pageBytes = this.pageSizeBytes;
    this.target(block, offsetBytes, pageBytes).fill(fill, offsetBytes, offsetBytes + pageBytes);
    this.zeroRecords++;
  }

  /** The rebuilt RAM of block `name` (throws when the stream had no such block). */
  blockBytes(name: string): Uint8Array {
    const bytes = this.ram.get(name);
    if (bytes === undefined) throw new CaptureError(`no RAM block '${name}' in the stream`);
    return bytes;
  }

  /** `[{name, sizeBytes}]` of the MEM_SIZE list, for deepEqual against what QEMU was given. */
  blockList(): Array<{ name: string; sizeBytes: number }> {
    return (this.blocks ?? []).map((b) => ({ name: b.name, sizeBytes: b.usedLengthBytes }));
  }

  private target(block: RamBlockRef, offsetBytes: number, lengthBytes: number): Uint8Array {
    const bytes = this.ram.get(block.name);
    if (bytes === undefined) throw new CaptureError(`RAM record for block '${block.name}' that the MEM_SIZE list did not announce`);
    if (offsetBytes < 0 || offsetBytes + lengthBytes > bytes.length) {
      throw new CaptureError(`RAM record at ${offsetBytes}+${lengthBytes} beyond block '${block.name}' of ${bytes.length} bytes`);
    }
    return bytes;
  }
}
