/**
 * Rebuilds guest RAM from a decoded stream, the way a destination would: one zero-filled
 * buffer per block of the MEM_SIZE list, PAGE records copied in, ZERO records filled, and
 * POSTCOPY_RAM_DISCARD ranges zeroed again (the destination drops those pages until they are
 * resent). It counts PAGE and ZERO records per block and, with a bitmap of pages that hold
 * content, the pages never sent.
 *
 * Nothing is allocated from an unchecked length: buffers exist only when the blocks together
 * fit `maxRamBytes` and each fits a typed array; the content bitmap only up to
 * `maxTrackedPages`. Past those limits the counts remain and a note says what was skipped.
 */
import { createHash } from 'node:crypto';
import { constants as bufferConstants } from 'node:buffer';
import { Bitmap } from '../lib/bitmap.ts';
import { formatBytes, GiB, TARGET_PAGE_SIZE } from '../lib/units.ts';
import type { RamBlockInfo, RamBlockRef } from '../format/stream-types.ts';

/** Default cap on the RAM rebuilt in memory. */
export const DEFAULT_MAX_RAM_BYTES = 8 * GiB;
/** Pages whose presence is tracked without content (a 32 MiB bitmap: 1 TiB of 4 KiB pages). */
export const MAX_TRACKED_PAGES = 2 ** 28;

export interface TrackedBlock {
  readonly name: string;
  readonly usedLengthBytes: number;
  readonly pageSizeBytes?: number;
  readonly gpa?: number;
  /** PAGE records applied (a page sent twice counts twice). */
  pageRecords: number;
  /** ZERO records applied. */
  zeroRecords: number;
  /** Pages named by POSTCOPY_RAM_DISCARD ranges. */
  discardedPages: number;
  /** The rebuilt content, or null when it is not kept. */
  content: Uint8Array | null;
  /** Pages holding content (sent and not discarded since), or null when not tracked. */
  present: Bitmap | null;
}

export interface RamBlockSummary {
  readonly name: string;
  readonly sizeBytes: number;
  readonly pageSizeBytes?: number;
  readonly gpa?: number;
  readonly normalPages: number;
  readonly zeroPages: number;
  readonly discardedPages: number;
  /** Pages with no content at the end (never sent, or discarded and not resent); null when untracked. */
  readonly pagesNeverSent: number | null;
  /** sha256 of the rebuilt block with unsent pages zero; null when the content was not kept. */
  readonly sha256: string | null;
}

export class RamTracker {
  readonly blocks: TrackedBlock[] = [];
  readonly notes: string[] = [];
  /** Target page size (4 KiB unless the CONFIGURATION names other page bits). */
  pageSizeBytes = TARGET_PAGE_SIZE;
  /** Tracked block for each index of the decoder's current block list. */
  private byIndex: TrackedBlock[] = [];
  private keepContent = true;

  constructor(private readonly maxRamBytes: number = DEFAULT_MAX_RAM_BYTES) {}

  /** A MEM_SIZE list arrived: map its indexes to tracked blocks, creating new ones. */
  onBlockList(totalBytes: number, infos: readonly RamBlockInfo[]): void {
    const known = new Map(this.blocks.map((b) => [b.name, b]));
    const newBytes = infos.filter((i) => !known.has(i.name)).reduce((sum, i) => sum + i.usedLengthBytes, 0);
    const heldBytes = this.blocks.reduce((sum, b) => sum + (b.content?.length ?? 0), 0);
    if (this.keepContent && heldBytes + newBytes > this.maxRamBytes) {
      this.keepContent = false;
      this.notes.push(
        `RAM content not rebuilt: the blocks total ${formatBytes(heldBytes + newBytes)} (MEM_SIZE says ${formatBytes(totalBytes)}), ` +
          `more than the ${formatBytes(this.maxRamBytes)} limit (--max-ram); no sha256 and no --extract-ram`,
      );
      for (const b of this.blocks) b.content = null;
    }
    this.byIndex = infos.map((info) => {
      const existing = known.get(info.name);
      if (existing !== undefined) return existing;
      const block = this.newBlock(info);
      this.blocks.push(block);
      known.set(info.name, block);
      return block;
    });
  }

  private newBlock(info: RamBlockInfo): TrackedBlock {
    let content: Uint8Array | null = null;
    if (this.keepContent) {
      if (info.usedLengthBytes > bufferConstants.MAX_LENGTH) {
        this.notes.push(`block '${info.name}' (${formatBytes(info.usedLengthBytes)}) is larger than one buffer may be; its content is not rebuilt`);
      } else {
        content = new Uint8Array(info.usedLengthBytes);
      }
    }
    const pages = Math.ceil(info.usedLengthBytes / this.pageSizeBytes);
    const trackedSoFar = this.blocks.reduce((sum, b) => sum + (b.present?.sizeBits ?? 0), 0);
    let present: Bitmap | null = null;
    if (trackedSoFar + pages <= MAX_TRACKED_PAGES) present = new Bitmap(pages);
    else this.notes.push(`pages of block '${info.name}' not tracked (more than ${MAX_TRACKED_PAGES} pages in all): no count of pages never sent`);
    const block: TrackedBlock = { name: info.name, usedLengthBytes: info.usedLengthBytes, pageRecords: 0, zeroRecords: 0, discardedPages: 0, content, present };
    const extra: { pageSizeBytes?: number; gpa?: number } = {};
    if (info.pageSizeBytes !== undefined) extra.pageSizeBytes = info.pageSizeBytes;
    if (info.gpa !== undefined) extra.gpa = info.gpa;
    return Object.assign(block, extra);
  }

  page(ref: RamBlockRef, offsetBytes: number, data: Uint8Array): void {
    const block = this.byIndex[ref.index];
    block.pageRecords++;
    block.content?.set(data, offsetBytes);
    block.present?.set(Math.floor(offsetBytes / this.pageSizeBytes));
  }

  zero(ref: RamBlockRef, offsetBytes: number, fill: number): void {
    const block = this.byIndex[ref.index];
    block.zeroRecords++;
    block.content?.fill(fill, offsetBytes, offsetBytes + this.pageSizeBytes);
    block.present?.set(Math.floor(offsetBytes / this.pageSizeBytes));
  }

  /** A page from a multifd channel, which names its block (unknown names are ignored). */
  pageByName(blockName: string, offsetBytes: number, data: Uint8Array): boolean {
    const block = this.blocks.find((b) => b.name === blockName);
    if (block === undefined || offsetBytes + data.length > block.usedLengthBytes) return false;
    block.pageRecords++;
    block.content?.set(data, offsetBytes);
    block.present?.set(Math.floor(offsetBytes / this.pageSizeBytes));
    return true;
  }

  /** POSTCOPY_RAM_DISCARD: the destination drops these pages (the decoder checked the ranges). */
  discard(blockName: string, ranges: ReadonlyArray<{ readonly startBytes: number; readonly lengthBytes: number }>): void {
    const block = this.blocks.find((b) => b.name === blockName);
    if (block === undefined) return;
    for (const r of ranges) {
      block.discardedPages += Math.floor(r.lengthBytes / this.pageSizeBytes);
      block.content?.fill(0, r.startBytes, r.startBytes + r.lengthBytes);
      block.present?.clearRange(Math.floor(r.startBytes / this.pageSizeBytes), Math.floor((r.startBytes + r.lengthBytes) / this.pageSizeBytes));
    }
  }

  summaries(): RamBlockSummary[] {
    return this.blocks.map((b) => {
      const s: { -readonly [K in keyof RamBlockSummary]: RamBlockSummary[K] } = {
        name: b.name,
        sizeBytes: b.usedLengthBytes,
        normalPages: b.pageRecords,
        zeroPages: b.zeroRecords,
        discardedPages: b.discardedPages,
        pagesNeverSent: b.present === null ? null : b.present.sizeBits - b.present.count(),
        sha256: b.content === null ? null : createHash('sha256').update(b.content).digest('hex'),
      };
      if (b.pageSizeBytes !== undefined) s.pageSizeBytes = b.pageSizeBytes;
      if (b.gpa !== undefined) s.gpa = b.gpa;
      return s;
    });
  }
}
