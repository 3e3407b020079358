/**
 * Postcopy pause and recovery on the source (facts §3.11, QEMU 7.2's qmp_migrate_pause,
 * migrate_prepare with resume, postcopy_do_resume, ram_dirty_bitmap_reload):
 *
 *   migrate-pause       postcopy-active → postcopy-paused (as a channel error; termination.ts)
 *   resume              postcopy-paused → postcopy-recover; on the NEW connection, with no
 *                       header and no CONFIGURATION: MIG_CMD_RECV_BITMAP for every RAM block;
 *                       a fresh return-path decoder; the "last block" of both channels reset
 *   RP RECV_BITMAP      the block's migration bitmap := NOT received, minus skipPages (virtio-mem
 *                       unplugged); `track`: sentOnce := received, hintedNeverSent cleared;
 *                       after the last block: dirty count, scan position reset, POSTCOPY_RESUME
 *   RP RESUME_ACK(1)    postcopy-recover → postcopy-active; the pumps go on (requests the
 *                       destination re-sends, then the background push or the END section anew)
 *   anything wrong      postcopy-recover → postcopy-paused (the handshake failed)
 *
 * Exactly once across a cut: a page written before the cut but lost with the connection is not
 * in the destination's received bitmap, so it becomes dirty and is sent again; a page that was
 * received stays clean and is never sent again.
 *
 * Texts are QEMU's: `migrate-pause is currently only supported during postcopy-active state`,
 * `Cannot resume if there is no paused migration`, `Postcopy recovery cannot work when
 * release-ram capability is set`, ram_dirty_bitmap_reload's and the RP thread's errors.
 */
import type { Bitmap } from '../../lib/bitmap.ts';
import { bitmapFromRecvBitmap, RP_RESUME_ACK_VALUE } from '../../format/return-path.ts';
import { FormatError } from '../../format/errors.ts';
import type { RamBlock } from '../../memory/ram-block.ts';
import { resetScan } from './page-scan.ts';
import type { SourceContext } from './source-context.ts';
import { SourceError } from './source-types.ts';
import { failMigration, onChannelError } from './termination.ts';

export const MIGRATE_PAUSE_NOT_POSTCOPY_TEXT = 'migrate-pause is currently only supported during postcopy-active state';
export const RESUME_NOT_PAUSED_TEXT = 'Cannot resume if there is no paused migration';
export const RESUME_RELEASE_RAM_TEXT = 'Postcopy recovery cannot work when release-ram capability is set';

/** QMP migrate-pause on the source: only in postcopy-active. */
export function migratePause(ctx: SourceContext, nowNs: number): SourceError | null {
  if (ctx.status !== 'postcopy-active') return new SourceError('MIG_ERR_PAUSE_NOT_POSTCOPY', MIGRATE_PAUSE_NOT_POSTCOPY_TEXT);
  ctx.mark('migrate-pause');
  onChannelError(ctx, nowNs, 'migrate-pause');
  return null;
}

/** QMP migrate with resume: true: the recovery handshake begins on a new connection. */
export function resumePostcopy(ctx: SourceContext): SourceError | null {
  if (ctx.status !== 'postcopy-paused' || ctx.phase.kind !== 'paused') {
    return new SourceError('MIG_ERR_RESUME_NOT_PAUSED', RESUME_NOT_PAUSED_TEXT);
  }
  if (ctx.caps['release-ram']) return new SourceError('MIG_ERR_RESUME_RELEASE_RAM', RESUME_RELEASE_RAM_TEXT);
  ctx.setStatus('postcopy-recover');
  ctx.recoveries++;
  ctx.rp = ctx.newReturnPathDecoder();
  ctx.rpInbox.length = 0;
  ctx.requests.clear();
  ctx.main.resetLastBlock();
  ctx.preempt?.resetLastBlock();
  ctx.lastPageChannel = 'main';
  ctx.recoverPending.clear();
  for (const block of ctx.blocks) {
    ctx.recoverPending.add(block.name);
    ctx.main.command({ kind: 'recv-bitmap', blockName: block.name });
  }
  ctx.flush();
  ctx.phase = { kind: 'recover', step: 'bitmaps' };
  return null;
}

/** RP RECV_BITMAP: one block's received pages; the last of them sends POSTCOPY_RESUME. */
export function onRecvBitmap(ctx: SourceContext, nowNs: number, blockName: string, wire: Uint8Array): void {
  const phase = ctx.phase;
  if (phase.kind !== 'recover' || phase.step !== 'bitmaps') {
    failMigration(ctx, nowNs, new SourceError('MIG_ERR_RP_UNEXPECTED', `ram_dirty_bitmap_reload: incorrect state ${ctx.status}`));
    return;
  }
  const block = ctx.ram.blocks.byName(blockName);
  if (block === undefined || !ctx.recoverPending.has(blockName)) {
    failMigration(ctx, nowNs, new SourceError('MIG_ERR_RP_UNKNOWN_BLOCK', `RP: RECV_BITMAP for block '${blockName}' that was not asked for`));
    return;
  }
  let received: Bitmap;
  try {
    received = bitmapFromRecvBitmap(wire, block.pageCount);
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    failMigration(ctx, nowNs, new SourceError('MIG_ERR_RP_MESSAGE', `ram_dirty_bitmap_reload: ramblock '${blockName}' bitmap size mismatch`));
    return;
  }
  reloadBlock(ctx, block, received);
  ctx.recoverPending.delete(blockName);
  ctx.mark('recv-bitmap', `${blockName}: ${block.pageCount - received.count()} page(s) missing`);
  if (ctx.recoverPending.size > 0) return;
  resetScan(ctx);
  ctx.updateRemaining();
  ctx.main.command({ kind: 'postcopy-resume' });
  ctx.flush();
  ctx.phase = { kind: 'recover', step: 'resume-ack' };
}

/** RP RESUME_ACK: the destination is postcopy-active again, and so is the source. */
export function onResumeAck(ctx: SourceContext, nowNs: number, value: number): void {
  const phase = ctx.phase;
  if (phase.kind !== 'recover' || phase.step !== 'resume-ack') {
    failMigration(ctx, nowNs, new SourceError('MIG_ERR_RP_UNEXPECTED', `RP: RESUME_ACK received in ${ctx.status} before POSTCOPY_RESUME`));
    return;
  }
  if (value !== RP_RESUME_ACK_VALUE) {
    failMigration(ctx, nowNs, new SourceError('MIG_ERR_RP_MESSAGE', `source_process_resume_ack: illegal resume_ack value ${value}`));
    return;
  }
  ctx.setStatus('postcopy-active');
  ctx.phase = { kind: 'postcopy' };
  ctx.mark('postcopy-resumed', `recovery ${ctx.recoveries}`);
}

/**
 * QEMU's ram_dirty_bitmap_reload for one block: bmap := complement of the received bitmap,
 * then the discarded (skip) ranges cleared again. The other per-page bitmaps follow the
 * destination's truth: under `track` the destination holds exactly the received pages, and a
 * hinted page it lacks is dirty again (so no longer "hinted, never sent"); under debugChecks a
 * page it lacks may be sent once more.
 */
function reloadBlock(ctx: SourceContext, block: RamBlock, received: Bitmap): void {
  const start = block.startPage;
  const end = start + block.pageCount;
  ctx.bitmap.clearRange(start, end);
  ctx.sentOnce?.clearRange(start, end);
  ctx.hintedNeverSent?.clearRange(start, end);
  let missing = received.nextClear(0);
  while (missing !== -1 && missing < block.pageCount) {
    const next = received.nextSet(missing);
    const runEnd = next === -1 ? block.pageCount : next;
    ctx.bitmap.setRange(start + missing, start + runEnd);
    ctx.sentAfterSwitch?.clearRange(start + missing, start + runEnd);
    missing = runEnd >= block.pageCount ? -1 : received.nextClear(runEnd);
  }
  if (ctx.sentOnce !== null) {
    for (let page = received.nextSet(0); page !== -1; page = received.nextSet(page + 1)) ctx.sentOnce.set(start + page);
  }
  const skip = ctx.hooks.skipPages();
  if (skip === null) return;
  for (const range of skip) {
    const from = Math.max(start, range.start);
    const to = Math.min(end, range.end);
    if (from < to) ctx.bitmap.clearRange(from, to);
  }
}
