/**
 * Free page hints on the source (QEMU's qemu_guest_free_page_hint, facts §5.6, and DESIGN §2):
 * the guest says pages [start, start + count) are free, so the source need not send them.
 *
 *   not migrating (QEMU: outgoing state not running)   → ignored (mark 'hint-not-migrating')
 *   `ignore-after-switch` and in postcopy               → ignored (mark 'hint-ignored-after-switch')
 *   otherwise, per block: clear the pages' bits in the MIGRATION BITMAP only (never the dirty
 *   log: a write after the hint reaches the next sync and is sent), `remaining` drops;
 *   under `track`, a cleared page the destination does not hold (not in sentOnce) is recorded
 *   in hintedNeverSent, so a postcopy request for it can be answered once.
 *
 * Bookkeeping cost under `track`: two extra bits per page (sentOnce, hintedNeverSent).
 */
import { popcount32 } from '../../lib/bitmap.ts';
import type { Bitmap } from '../../lib/bitmap.ts';
import { isPostcopyStatus, type MigrationStatus } from '../status.ts';
import type { SourceContext } from './source-context.ts';

/** QEMU 7.2's test in qemu_guest_free_page_hint: the outgoing migration is running. */
const HINTING_STATUSES: ReadonlySet<MigrationStatus> = new Set<MigrationStatus>([
  'setup',
  'active',
  'postcopy-active',
  'postcopy-paused',
  'postcopy-recover',
  'pre-switchover',
  'device',
  'wait-unplug',
  'colo',
]);

/** Applies one hint. */
export function applyHint(ctx: SourceContext, startPage: number, pageCount: number): void {
  if (!HINTING_STATUSES.has(ctx.status)) {
    ctx.mark('hint-not-migrating', ctx.status);
    return;
  }
  if (ctx.options.hintPolicy === 'ignore-after-switch' && isPostcopyStatus(ctx.status)) {
    ctx.mark('hint-ignored-after-switch', `${startPage}+${pageCount}`);
    return;
  }
  const endPage = startPage + pageCount;
  let inside = 0;
  for (const block of ctx.blocks) {
    const start = Math.max(startPage, block.startPage);
    const end = Math.min(endPage, block.startPage + block.pageCount);
    if (start >= end) continue;
    inside += end - start;
    if (ctx.hintedNeverSent !== null && ctx.sentOnce !== null) {
      ctx.counters.hintedNeverSentPages += recordNeverSent(ctx.bitmap.bits.words, ctx.sentOnce, ctx.hintedNeverSent, start, end);
    }
    ctx.counters.hintedPages += ctx.bitmap.clearRange(start, end);
  }
  if (inside < pageCount) ctx.mark('hint-outside-ram', `${startPage}+${pageCount}`);
  ctx.updateRemaining();
}

/**
 * Adds to hintedNeverSent the pages of [start, end) that are dirty (about to be cleared by the
 * hint) and not held by the destination; returns how many were added.
 */
function recordNeverSent(dirty: Uint32Array, sentOnce: Bitmap, hinted: Bitmap, start: number, end: number): number {
  const sent = sentOnce.words;
  const marks = hinted.words;
  let added = 0;
  for (let w = start >>> 5; w * 32 < end; w++) {
    const from = Math.max(start - w * 32, 0);
    const to = Math.min(end - w * 32, 32);
    const mask = (to === 32 ? 0xffffffff : (1 << to) - 1) & ~((1 << from) - 1);
    const fresh = dirty[w] & mask & ~sent[w] & ~marks[w];
    if (fresh !== 0) {
      marks[w] |= fresh;
      added += popcount32(fresh);
    }
  }
  return added;
}
