/**
 * The background page scan (QEMU's ram_find_and_save_block / find_dirty_block): from the last
 * position, blocks in list order, ascending pages within a block, wrapping to the first block.
 * The migration bitmap is read a 32-bit word at a time: all-clean words are skipped in a tight
 * loop, and each run of consecutive dirty pages goes to the page emitter in one call.
 *
 *   scanPage ──► [nextSet] ─ run ─► [runEnd] ─► emit(run) ─► clear bits ─► scanPage = end of run
 *
 * `sendPages` is also the one way a page leaves the source (requests use it too), so the
 * bookkeeping lives here: migration bits cleared, `sentOnce` set and `hintedNeverSent` cleared
 * under `track`, "never twice after the switch" asserted under debugChecks, statistics counted.
 */
import { assert } from '../../lib/assert.ts';
import { ctz32 } from '../../lib/bitmap.ts';
import type { StreamEncoder } from '../../format/stream-encoder.ts';
import type { RamBlock } from '../../memory/ram-block.ts';
import type { SourceContext } from './source-context.ts';

/** The first set bit in [from, limit), or -1. */
export function nextSetBefore(words: Uint32Array, from: number, limit: number): number {
  if (from >= limit) return -1;
  let w = from >>> 5;
  let word = words[w] & (0xffffffff << (from & 31));
  const lastWord = (limit - 1) >>> 5;
  while (word === 0) {
    if (++w > lastWord) return -1;
    word = words[w];
  }
  const i = w * 32 + ctz32(word);
  return i < limit ? i : -1;
}

/** The end of the run of set bits that starts at the set bit `from`, at most `limit`. */
export function runEndBefore(words: Uint32Array, from: number, limit: number): number {
  let w = from >>> 5;
  let clear = ~words[w] & (0xffffffff << (from & 31));
  while (clear === 0) {
    w++;
    if (w * 32 >= limit) return limit;
    clear = ~words[w];
  }
  return Math.min(w * 32 + ctz32(clear), limit);
}

/**
 * Writes pages [firstPage, firstPage + count) of `block`, all dirty in the migration bitmap,
 * stopping once `encoder` reached `wireLimit` (at least one page). Clears their bits, does the
 * hint and debug bookkeeping, counts statistics and scanned pages. Returns pages written.
 */
export function sendPages(ctx: SourceContext, encoder: StreamEncoder, block: RamBlock, firstPage: number, count: number, wireLimit: number): number {
  const emitter = ctx.emitter;
  const wireBefore = encoder.wireOffsetBytes;
  const zeroBefore = emitter.zeroPages;
  const normalBefore = emitter.normalPages;
  const written = emitter.emit(encoder, block, firstPage, count, wireLimit);
  const endPage = firstPage + written;
  const cleared = ctx.bitmap.clearRange(firstPage, endPage);
  assert(cleared === written, `sent ${written} pages from ${firstPage} but only ${cleared} were dirty`);
  if (ctx.sentOnce !== null && ctx.hintedNeverSent !== null) {
    ctx.sentOnce.setRange(firstPage, endPage);
    ctx.hintedNeverSent.clearRange(firstPage, endPage);
  }
  if (ctx.sentAfterSwitch !== null) {
    assert(ctx.sentAfterSwitch.countRange(firstPage, endPage) === 0, `page in [${firstPage}, ${endPage}) sent twice after the postcopy switch`);
    ctx.sentAfterSwitch.setRange(firstPage, endPage);
  }
  ctx.stats.addTransferred(encoder.wireOffsetBytes - wireBefore, ctx.transferPhase());
  ctx.stats.addZeroPages(emitter.zeroPages - zeroBefore);
  ctx.stats.addNormalPages(emitter.normalPages - normalBefore);
  ctx.pagesScanned += written;
  return written;
}

/**
 * Sends dirty pages from the scan position until the encoder reached `wireLimit` or
 * `maxPages` were sent or nothing is dirty. Returns pages sent.
 */
export function scanAndSend(ctx: SourceContext, encoder: StreamEncoder, wireLimit: number, maxPages: number): number {
  const words = ctx.bitmap.bits.words;
  const blocks = ctx.blocks;
  let sent = 0;
  // Blocks entered without finding a dirty page; more than blocks.length + 1 means the dirty
  // count disagrees with the bits inside blocks.
  let emptyBlocks = 0;
  while (sent < maxPages && ctx.bitmap.dirtyCount > 0) {
    if (sent > 0 && encoder.wireOffsetBytes >= wireLimit) break;
    const block = blocks[ctx.scanBlock];
    const blockEnd = block.startPage + block.pageCount;
    const page = nextSetBefore(words, ctx.scanPage, blockEnd);
    if (page < 0) {
      emptyBlocks++;
      assert(emptyBlocks <= blocks.length + 1, `dirty count ${ctx.bitmap.dirtyCount} but no dirty page inside any block`);
      ctx.scanBlock = (ctx.scanBlock + 1) % blocks.length;
      ctx.scanPage = blocks[ctx.scanBlock].startPage;
      continue;
    }
    emptyBlocks = 0;
    const runEnd = runEndBefore(words, page, Math.min(blockEnd, page + (maxPages - sent)));
    const written = sendPages(ctx, encoder, block, page, runEnd - page, wireLimit);
    sent += written;
    ctx.scanPage = page + written;
  }
  return sent;
}

/** Moves the scan position to page `pageIndex` of `block` (after serving a request there). */
export function moveScanTo(ctx: SourceContext, block: RamBlock, pageIndex: number): void {
  const index = ctx.blocks.indexOf(block);
  assert(index >= 0, `block ${block.name} is not in the block list`);
  ctx.scanBlock = index;
  ctx.scanPage = pageIndex;
}

/** Resets the scan to the start of the first block (QEMU does this at the postcopy switch). */
export function resetScan(ctx: SourceContext): void {
  ctx.scanBlock = 0;
  ctx.scanPage = ctx.blocks[0].startPage;
}
