/**
 * Postcopy recovery on the destination (facts §3.11; QEMU 7.2's qmp_migrate_recover,
 * postcopy_try_recover, loadvm_handle_recv_bitmap, loadvm_postcopy_handle_resume):
 *
 *   postcopy-paused   faults wait, no requests; bytes of the dead connection are dropped
 *     migrate-recover     armed for this pause (QEMU's postcopy_recover_triggered); refused
 *                         unless paused, or when already armed
 *     channel replaced    postcopy-paused → postcopy-recover (QEMU's postcopy_try_recover, on
 *                         the source's connection); the main decoder restarts at a record
 *                         boundary (the source sends no header)
 *   postcopy-recover
 *     MIG_CMD_RECV_BITMAP RP RECV_BITMAP + the block's received pages (format/recv-bitmap.ts)
 *     MIG_CMD_POSTCOPY_RESUME  → postcopy-active; RP RESUME_ACK(1); one request per page a vCPU
 *                         still waits for (the first names its block: the last block is reset)
 *     an error            → postcopy-paused again (a new migrate-recover is needed)
 *
 * Nothing here places a page: the received map the source is told about is exactly what was
 * placed, so the source resends precisely the pages that were lost with the connection.
 */
import { encodeRpMessages, recvBitmapFromRange, RP_RESUME_ACK_VALUE } from '../../format/return-path.ts';
import type { StreamDecoder } from '../../format/stream-decoder.ts';
import { PAGE_SIZE_BYTES } from '../../memory/page-content.ts';
import type { DestRam } from '../engine-types.ts';
import type { DestContext } from './dest-context.ts';
import { DestError, MIG_ERR_DEST_COMMAND, MIG_ERR_DEST_UNKNOWN_BLOCK, RECOVERY_TEXTS } from './dest-errors.ts';
import type { FaultTracker } from './fault-tracker.ts';

/** The value of `armedForPause` when migrate-recover is not pending. */
const NONE = -1;

export class DestRecovery {
  /** The shared per-input state. */
  private readonly ctx: DestContext;
  /** The RAM whose received map is reported. */
  private readonly ram: DestRam;
  /** The waiting vCPUs whose pages are requested again. */
  private readonly faults: FaultTracker;
  /** ctx.pauses when migrate-recover was accepted (valid for that pause only), else NONE. */
  private armedForPause = NONE;
  /** Recoveries begun (postcopy-paused → postcopy-recover). */
  recoveries = 0;

  constructor(ctx: DestContext, ram: DestRam, faults: FaultTracker) {
    this.ctx = ctx;
    this.ram = ram;
    this.faults = faults;
  }

  /** QMP migrate-recover: refused unless postcopy-paused, or when already issued for this pause. */
  migrateRecover(): DestError | null {
    const ctx = this.ctx;
    if (ctx.phase.kind !== 'paused') return new DestError(MIG_ERR_DEST_COMMAND, RECOVERY_TEXTS.recoverNotPaused);
    if (this.armedForPause === ctx.pauses) return new DestError(MIG_ERR_DEST_COMMAND, RECOVERY_TEXTS.recoverTriggered);
    this.armedForPause = ctx.pauses;
    ctx.mark('migrate-recover');
    return null;
  }

  /**
   * The source connected again. Taken only after migrate-recover in postcopy-paused: the
   * decoder restarts at a record boundary and the status moves to postcopy-recover. Returns
   * whether it was taken.
   */
  replaceMain(decoder: StreamDecoder): boolean {
    const ctx = this.ctx;
    if (ctx.phase.kind !== 'paused' || this.armedForPause !== ctx.pauses) {
      ctx.mark('channel-replaced-refused', `main in ${ctx.phase.kind}${ctx.phase.kind === 'paused' ? ' without migrate-recover' : ''}`);
      return false;
    }
    decoder.resumeOnNewChannel();
    this.armedForPause = NONE;
    this.recoveries++;
    ctx.mark('channel-replaced', 'main');
    ctx.move({ kind: 'recover' });
    return true;
  }

  /** MIG_CMD_RECV_BITMAP: answer with the block's received pages (QEMU answers in any state). */
  answerRecvBitmap(blockName: string): void {
    const ctx = this.ctx;
    const block = this.ram.blocks.byName(blockName);
    if (block === undefined) throw new DestError(MIG_ERR_DEST_UNKNOWN_BLOCK, RECOVERY_TEXTS.recvBitmapUnknownBlock(blockName));
    if (!ctx.returnPathOpen) return ctx.mark('recv-bitmap-without-return-path', blockName);
    const bitmap = recvBitmapFromRange(this.ram.received.bits, block.startPage, block.pageCount);
    ctx.send(encodeRpMessages([{ kind: 'recv-bitmap', blockName, bitmap }]));
  }

  /** MIG_CMD_POSTCOPY_RESUME: back to postcopy-active, RESUME_ACK, requests for waiting vCPUs. */
  resume(): void {
    const ctx = this.ctx;
    if (ctx.phase.kind !== 'recover') return ctx.mark('illegal-resume', RECOVERY_TEXTS.illegalResume);
    this.faults.resetRequestBlock();
    ctx.move({ kind: 'resume' });
    ctx.send(encodeRpMessages([{ kind: 'resume-ack', value: RP_RESUME_ACK_VALUE }]));
    const pages = this.faults.waitedPages();
    for (const pageIndex of pages) {
      const block = this.ram.blocks.blockOfPage(pageIndex);
      if (block === undefined) continue;
      ctx.send(this.faults.request(block.name, (pageIndex - block.startPage) * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES));
    }
    ctx.mark('postcopy-resumed', `${pages.length} request(s) sent again`);
  }
}
