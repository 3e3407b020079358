/**
 * Postcopy page requests on the source (facts §3.6): checking and queueing a REQ_PAGES /
 * REQ_PAGES_ID (QEMU's migrate_handle_rp_req_pages and ram_save_queue_pages, with their
 * texts), and serving the queue one target page at a time before any background page
 * (get_queued_page):
 *
 *   bit set in the migration bitmap          → send the page (and, without preempt, move the
 *                                              background scan to the page after it)
 *   bit clear, `track`, page in hintedNeverSent → one ZERO record; the page leaves hintedNeverSent
 *   bit clear otherwise                      → dropped ("not dirty → not sent"; mark)
 *
 * A request can never make a page go twice after the switch: sending clears the bit, and the
 * ZERO answer clears the page from hintedNeverSent, so the same request again finds nothing.
 */
import { assert } from '../../lib/assert.ts';
import { TARGET_PAGE_SIZE } from '../../lib/units.ts';
import type { StreamEncoder } from '../../format/stream-encoder.ts';
import type { RamBlock } from '../../memory/ram-block.ts';
import { isPostcopyStatus } from '../status.ts';
import { moveScanTo, sendPages } from './page-scan.ts';
import type { SourceContext } from './source-context.ts';
import { SourceError } from './source-types.ts';

/** A page request as the return-path decoder delivers it (the block is always named). */
export interface PageRequest {
  readonly blockName: string;
  readonly startBytes: number;
  readonly lengthBytes: number;
}

/**
 * Checks and queues one request. Returns the error that must fail the migration, or null.
 * Requests that arrive after the stream ended are counted and dropped.
 */
export function queuePageRequest(ctx: SourceContext, request: PageRequest): SourceError | null {
  const { blockName, startBytes, lengthBytes } = request;
  ctx.counters.requestsReceived++;
  if (startBytes % TARGET_PAGE_SIZE !== 0 || lengthBytes % TARGET_PAGE_SIZE !== 0) {
    return new SourceError(
      'MIG_ERR_RP_MISALIGNED_REQUEST',
      `migrate_handle_rp_req_pages: Misaligned page request, start: ${startBytes.toString(16)} len: ${lengthBytes}`,
    );
  }
  ctx.stats.recordPostcopyRequest();
  const block = ctx.ram.blocks.byName(blockName);
  if (block === undefined) return new SourceError('MIG_ERR_RP_UNKNOWN_BLOCK', `ram_save_queue_pages no block '${blockName}'`);
  // QEMU checks that the request's last byte lies in the block; a length of 0 asks for the page
  // at start (unqueue_page examines the entry's offset once), and at offset 0 wraps to an overrun.
  const lastByte = startBytes + lengthBytes - 1;
  if (lastByte < 0 || lastByte >= block.sizeBytes || startBytes >= block.sizeBytes) {
    return new SourceError(
      'MIG_ERR_RP_REQUEST_OVERRUN',
      `ram_save_queue_pages request overrun start=${startBytes.toString(16)} len=${lengthBytes.toString(16)} blocklen=${block.sizeBytes.toString(16)}`,
    );
  }
  if (lengthBytes === 0) ctx.mark('request-empty', `${blockName}+${startBytes.toString(16)}`);
  const pageCount = Math.max(1, lengthBytes / TARGET_PAGE_SIZE);
  const phase = ctx.phase.kind;
  if (phase === 'awaiting-shut' || phase === 'finished') {
    ctx.counters.requestedPagesDropped += pageCount;
    ctx.mark('request-after-end', `${blockName}+${startBytes.toString(16)}`);
    return null;
  }
  if (!ctx.requests.push(block.startPage + startBytes / TARGET_PAGE_SIZE, pageCount)) {
    return new SourceError('MIG_ERR_REQUEST_QUEUE_FULL', `Page request queue full: ${ctx.requests.limit} requests are queued already`);
  }
  ctx.counters.requestQueueHighWater = Math.max(ctx.counters.requestQueueHighWater, ctx.requests.length);
  return null;
}

/** Serves every queued request (urgent: no budget, no rate limit). */
export function serveRequests(ctx: SourceContext): void {
  if (ctx.requests.isEmpty) return;
  const encoder = ctx.requestEncoder();
  const movesScan = ctx.preempt === null || !isPostcopyStatus(ctx.status);
  for (let page = ctx.requests.popPage(); page >= 0; page = ctx.requests.popPage()) {
    const block = ctx.blockOfPage(page);
    assert(block !== undefined, `queued request for page ${page} outside every block`);
    if (ctx.bitmap.bits.test(page)) {
      sendPages(ctx, encoder, block, page, 1, Infinity);
      ctx.counters.requestedPagesSent++;
      if (movesScan) moveScanTo(ctx, block, page + 1);
    } else if (ctx.hintedNeverSent !== null && ctx.hintedNeverSent.test(page)) {
      sendHintedZero(ctx, encoder, block, page);
    } else {
      ctx.counters.requestedPagesDropped++;
      ctx.pagesScanned++;
      ctx.mark('request-not-dirty', String(page));
    }
  }
  ctx.updateRemaining();
}

/**
 * `track`: the answer to a request for a page a hint cleared before it was ever sent. The guest
 * considers the page free, so any content will do; a ZERO record is the cheapest.
 */
function sendHintedZero(ctx: SourceContext, encoder: StreamEncoder, block: RamBlock, page: number): void {
  const sentOnce = ctx.sentOnce;
  const hinted = ctx.hintedNeverSent;
  assert(sentOnce !== null && hinted !== null && !sentOnce.test(page), `hinted page ${page} was sent before`);
  const wireBefore = encoder.wireOffsetBytes;
  encoder.ramZeroPage(block.name, page - block.startPage);
  hinted.clear(page);
  sentOnce.set(page);
  if (ctx.sentAfterSwitch !== null) {
    assert(!ctx.sentAfterSwitch.test(page), `page ${page} sent twice after the postcopy switch`);
    ctx.sentAfterSwitch.set(page);
  }
  ctx.stats.addTransferred(encoder.wireOffsetBytes - wireBefore, ctx.transferPhase());
  ctx.stats.addZeroPages(1);
  ctx.pagesScanned++;
  ctx.counters.hintedZeroPagesSent++;
  ctx.mark('request-hinted-zero', String(page));
}
