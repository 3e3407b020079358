/**
 * Bytes from the return path (facts §3.2), decoded by format's ReturnPathDecoder (push, any
 * chunking) and handled in order:
 *
 *   PONG            counted (PONG order is not guaranteed, §3.4; nothing depends on it)
 *   REQ_PAGES[_ID]  checked and queued (requests.ts); served by the next pump
 *   SHUT(0)         the destination is done: completed if everything is written, else remembered
 *   SHUT(n ≠ 0)     failed: `RP: Sibling indicated error n`
 *   RECV_BITMAP, RESUME_ACK  in postcopy-recover: the recovery handshake (recovery.ts); elsewhere
 *                   failed: they belong to postcopy recovery
 *   malformed bytes failed with the decoder's text (a REQ_PAGES before any REQ_PAGES_ID gets
 *                   QEMU's `ram_save_queue_pages no previous block`)
 *
 * Messages decoded before a malformed one are still handled.
 */
import { FormatError } from '../../format/errors.ts';
import { MIG_ERR_RP_NO_PREVIOUS_BLOCK, type RpMessage } from '../../format/return-path.ts';
import { onRecvBitmap, onResumeAck } from './recovery.ts';
import { queuePageRequest } from './requests.ts';
import type { SourceContext } from './source-context.ts';
import { SourceError } from './source-types.ts';
import { finishCompleted } from './switchover.ts';
import { failMigration } from './termination.ts';

/** Feeds return-path bytes and handles every message they complete. */
export function onReturnPathBytes(ctx: SourceContext, nowNs: number, bytes: Uint8Array): void {
  const rp = ctx.rp;
  if (rp === null) {
    ctx.mark('rp-without-return-path');
    return;
  }
  const phase = ctx.phase.kind;
  if (phase === 'idle' || phase === 'finished' || phase === 'paused') {
    ctx.mark('rp-ignored', phase);
    return;
  }
  ctx.rpInbox.length = 0;
  let decodeError: SourceError | null = null;
  try {
    rp.push(bytes);
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    decodeError =
      e.code === MIG_ERR_RP_NO_PREVIOUS_BLOCK
        ? new SourceError('MIG_ERR_RP_NO_PREVIOUS_BLOCK', 'ram_save_queue_pages no previous block')
        : new SourceError('MIG_ERR_RP_MESSAGE', `RP: ${e.message}`);
  }
  const inbox = ctx.rpInbox.splice(0);
  for (const message of inbox) {
    // A message may end the migration (SHUT, a bad request) or pause it (a failed recovery
    // handshake); the rest are then moot.
    if (isFinished(ctx) || isPaused(ctx)) return;
    onMessage(ctx, nowNs, message);
  }
  if (decodeError !== null && isPaused(ctx)) return;
  if (decodeError !== null) failMigration(ctx, nowNs, decodeError);
}

function isFinished(ctx: SourceContext): boolean {
  return ctx.phase.kind === 'finished';
}

function isPaused(ctx: SourceContext): boolean {
  return ctx.phase.kind === 'paused';
}

function onMessage(ctx: SourceContext, nowNs: number, message: RpMessage): void {
  switch (message.kind) {
    case 'pong':
      ctx.counters.pongs++;
      ctx.counters.lastPong = message.value;
      return;
    case 'req-pages':
    case 'req-pages-id': {
      const error = queuePageRequest(ctx, message);
      if (error !== null) failMigration(ctx, nowNs, error);
      return;
    }
    case 'shut':
      if (message.status !== 0) {
        failMigration(ctx, nowNs, new SourceError('MIG_ERR_RP_SIBLING_ERROR', `RP: Sibling indicated error ${message.status}`));
        return;
      }
      ctx.shutReceived = true;
      if (ctx.phase.kind === 'awaiting-shut') finishCompleted(ctx, nowNs);
      return;
    case 'recv-bitmap':
    case 'resume-ack':
      if (ctx.phase.kind === 'recover') {
        if (message.kind === 'recv-bitmap') onRecvBitmap(ctx, nowNs, message.blockName, message.bitmap);
        else onResumeAck(ctx, nowNs, message.value);
        return;
      }
      failMigration(ctx, nowNs, new SourceError('MIG_ERR_RP_UNEXPECTED', `RP: ${message.kind.toUpperCase()} received outside postcopy recovery`));
      return;
  }
}
