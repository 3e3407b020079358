/**
 * RAM blocks: the named pieces of guest RAM that QEMU migrates (RAMBlock, named by its idstr,
 * e.g. "pc.ram" or "ram"). In livemig, guest RAM is one flat range of pages and each block
 * occupies [offsetBytes, offsetBytes + sizeBytes) of it, so a block offset maps to a guest
 * physical address by adding offsetBytes. A block reserves maxSizeBytes (QEMU's max_length,
 * for resizable blocks) but only sizeBytes (used_length) is migrated.
 *
 * The list is kept in QEMU's RAM list order: largest maxSizeBytes first, and blocks of equal
 * maxSizeBytes in the order they were added (ram_block_add inserts a new block before the
 * first block with a strictly smaller max_length). The setup chunk of the RAM section walks
 * blocks in this order.
 */
import { PAGE_SIZE_BYTES } from './page-content.ts';

/** One RAM block, with its page-index view precomputed. */
export interface RamBlock {
  /** QEMU's RAMBlock idstr: 1..255 bytes of UTF-8, unique in the list. */
  readonly name: string;
  /** Where the block starts in guest RAM (equal to its first guest physical address). */
  readonly offsetBytes: number;
  /** Bytes in use and migrated (used_length). */
  readonly sizeBytes: number;
  /** Bytes reserved (max_length); at least sizeBytes. */
  readonly maxSizeBytes: number;
  /** Index of the block's first guest page: offsetBytes / 4096. */
  readonly startPage: number;
  /** Pages in use: sizeBytes / 4096. */
  readonly pageCount: number;
}

/** What a caller supplies to describe a block; maxSizeBytes defaults to sizeBytes. */
export interface RamBlockSpec {
  /** QEMU's RAMBlock idstr. */
  readonly name: string;
  /** Where the block starts in guest RAM; a multiple of 4096. */
  readonly offsetBytes: number;
  /** Bytes in use; a positive multiple of 4096. */
  readonly sizeBytes: number;
  /** Bytes reserved; a multiple of 4096, at least sizeBytes. */
  readonly maxSizeBytes?: number;
}

/** Why a block list was rejected or a lookup failed. */
export type RamBlockErrorReason = 'bad-name' | 'duplicate-name' | 'bad-geometry' | 'overlap' | 'unknown-block' | 'out-of-range';

/** Thrown for an invalid block list or a lookup outside every block. */
export class RamBlockError extends Error {
  override name = 'RamBlockError';
  constructor(readonly reason: RamBlockErrorReason, detail: string) {
    super(`RAM block error (${reason}): ${detail}`);
  }
}

/** The longest idstr the stream can carry (a u8 length prefix). */
export const RAM_BLOCK_NAME_MAX_BYTES = 255;

const utf8 = new TextEncoder();

function isPageMultiple(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n % PAGE_SIZE_BYTES === 0;
}

function toBlock(spec: RamBlockSpec): RamBlock {
  const nameBytes = utf8.encode(spec.name).length;
  if (nameBytes === 0 || nameBytes > RAM_BLOCK_NAME_MAX_BYTES) {
    throw new RamBlockError('bad-name', `block name ${JSON.stringify(spec.name)} must be 1..${RAM_BLOCK_NAME_MAX_BYTES} bytes`);
  }
  const maxSizeBytes = spec.maxSizeBytes ?? spec.sizeBytes;
  if (!isPageMultiple(spec.offsetBytes) || !isPageMultiple(spec.sizeBytes) || spec.sizeBytes === 0 || !isPageMultiple(maxSizeBytes) || maxSizeBytes < spec.sizeBytes) {
    throw new RamBlockError(
      'bad-geometry',
      `block ${spec.name}: offset ${spec.offsetBytes}, size ${spec.sizeBytes}, max ${maxSizeBytes} must be page multiples with 0 < size <= max`,
    );
  }
  return {
    name: spec.name,
    offsetBytes: spec.offsetBytes,
    sizeBytes: spec.sizeBytes,
    maxSizeBytes,
    startPage: spec.offsetBytes / PAGE_SIZE_BYTES,
    pageCount: spec.sizeBytes / PAGE_SIZE_BYTES,
  };
}

export class RamBlockList {
  /** Blocks in QEMU RAM list order (largest maxSizeBytes first, ties in insertion order). */
  readonly blocks: readonly RamBlock[];
  /** Sum of sizeBytes: the total the RAM setup chunk announces. */
  readonly totalBytes: number;
  /** The end of the highest reservation: guest RAM must span at least this many bytes. */
  readonly endBytes: number;
  /** Blocks by name. */
  private readonly byNameMap = new Map<string, RamBlock>();
  /** Blocks sorted by offsetBytes, for address lookup. */
  private readonly byOffset: readonly RamBlock[];

  constructor(specs: readonly RamBlockSpec[]) {
    const added = specs.map(toBlock);
    for (const block of added) {
      if (this.byNameMap.has(block.name)) throw new RamBlockError('duplicate-name', `block ${block.name} appears twice`);
      this.byNameMap.set(block.name, block);
    }
    // Array.prototype.sort is stable, so equal maxSizeBytes keep insertion order, as in QEMU.
    this.blocks = added.slice().sort((a, b) => b.maxSizeBytes - a.maxSizeBytes);
    this.byOffset = added.slice().sort((a, b) => a.offsetBytes - b.offsetBytes);
    for (let i = 1; i < this.byOffset.length; i++) {
      const before = this.byOffset[i - 1];
      const after = this.byOffset[i];
      if (before.offsetBytes + before.maxSizeBytes > after.offsetBytes) {
        throw new RamBlockError('overlap', `block ${before.name} (reserving up to 0x${(before.offsetBytes + before.maxSizeBytes).toString(16)}) overlaps ${after.name} at 0x${after.offsetBytes.toString(16)}`);
      }
    }
    this.totalBytes = added.reduce((sum, b) => sum + b.sizeBytes, 0);
    this.endBytes = added.reduce((end, b) => Math.max(end, b.offsetBytes + b.maxSizeBytes), 0);
  }

  /** One block named `name` covering guest RAM from 0 (QEMU `-M none -m 16M` has "ram"). */
  static single(name: string, sizeBytes: number): RamBlockList {
    return new RamBlockList([{ name, offsetBytes: 0, sizeBytes }]);
  }

  /** The block named `name`, or undefined. */
  byName(name: string): RamBlock | undefined {
    return this.byNameMap.get(name);
  }

  /** The block named `name`; RamBlockError('unknown-block') when there is none. */
  requireByName(name: string): RamBlock {
    const block = this.byNameMap.get(name);
    if (block === undefined) throw new RamBlockError('unknown-block', `no RAM block named ${JSON.stringify(name)}`);
    return block;
  }

  /** The block whose used range holds guest physical address `gpa`, or undefined. */
  blockAt(gpa: number): RamBlock | undefined {
    let lo = 0;
    let hi = this.byOffset.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.byOffset[mid].offsetBytes <= gpa) lo = mid + 1;
      else hi = mid;
    }
    const block = lo > 0 ? this.byOffset[lo - 1] : undefined;
    return block !== undefined && gpa < block.offsetBytes + block.sizeBytes ? block : undefined;
  }

  /** The block whose used range holds guest page `pageIndex`, or undefined. */
  blockOfPage(pageIndex: number): RamBlock | undefined {
    return this.blockAt(pageIndex * PAGE_SIZE_BYTES);
  }

  /** The (block, offset within block) of `gpa`, or undefined outside every block. */
  locate(gpa: number): { block: RamBlock; offsetBytes: number } | undefined {
    const block = this.blockAt(gpa);
    return block === undefined ? undefined : { block, offsetBytes: gpa - block.offsetBytes };
  }

  /** The guest physical address of `offsetBytes` into block `name`; RamBlockError if outside. */
  toGpa(name: string, offsetBytes: number): number {
    const block = this.requireByName(name);
    if (!(Number.isSafeInteger(offsetBytes) && offsetBytes >= 0 && offsetBytes < block.sizeBytes)) {
      throw new RamBlockError('out-of-range', `offset 0x${offsetBytes.toString(16)} is outside block ${name} of ${block.sizeBytes} bytes`);
    }
    return block.offsetBytes + offsetBytes;
  }

  /** The guest page index of page `pageInBlock` of block `name`; RamBlockError if outside. */
  toPageIndex(name: string, pageInBlock: number): number {
    return this.toGpa(name, pageInBlock * PAGE_SIZE_BYTES) / PAGE_SIZE_BYTES;
  }
}
