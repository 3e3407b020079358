/**
 * One RAM PART chunk of QEMU's ram_save_iterate, shared by precopy and postcopy:
 *
 *   PART header │ queued page requests (urgent: not rate limited; to the preempt channel when
 *               │ it exists and the source is in postcopy) │ background scan until the shell's
 *               │ budget, the rate limiter's allowance or maxChunkPages │ EOS │ footer │ flush
 *
 * The EOS counts 8 bytes in `transferred` (ram_save_iterate does; the setup and END chunks'
 * EOS do not).
 */
import { budgetLeftBytes, isOverBudget } from '../rate-limiter.ts';
import { scanAndSend } from './page-scan.ts';
import { serveRequests } from './requests.ts';
import type { SourceContext } from './source-context.ts';

/** Bytes of the EOS record that ends a RAM chunk. */
const EOS_BYTES = 8;

/**
 * True when the migration thread would sleep now (QEMU: qemu_file_rate_limit and no urgent
 * request). Criteria: no page request queued, and the budget is exhausted or the rate limiter's
 * window is used up.
 */
export function isThrottled(ctx: SourceContext, budgetBytes: number): boolean {
  return ctx.requests.isEmpty && (budgetBytes <= 0 || isOverBudget(ctx.limiter));
}

/**
 * One RAM PART chunk: requests first, then background pages within the shell's budget, the
 * rate limiter's allowance and maxChunkPages; EOS; footer; flushed.
 */
export function writeRamChunk(ctx: SourceContext, budgetBytes: number): void {
  const main = ctx.main;
  const id = ctx.options.ramSectionId;
  const chunkStart = main.wireOffsetBytes;
  main.sectionPart(id);
  serveRequests(ctx);
  const usedBytes = main.wireOffsetBytes - chunkStart;
  const rateLeftBytes = budgetLeftBytes(ctx.limiter) - (main.wireOffsetBytes - ctx.limiterCountedBytes);
  const allowanceBytes = Math.min(budgetBytes - usedBytes, rateLeftBytes);
  if (allowanceBytes > 0) {
    const encoder = ctx.backgroundEncoder();
    scanAndSend(ctx, encoder, encoder.wireOffsetBytes + allowanceBytes, ctx.options.maxChunkPages);
  }
  ctx.syncMultifd();
  main.ramEos();
  ctx.stats.addTransferred(EOS_BYTES, ctx.transferPhase());
  main.footer(id);
  ctx.updateRemaining();
  ctx.flush();
}
