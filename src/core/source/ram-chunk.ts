/**
 * One RAM PART chunk of QEMU's ram_save_iterate, shared by precopy and postcopy:
 *
 *   PART header │ queued page requests (urgent: not rate limited; to the preempt channel when
 *               │ it exists and the source is in postcopy) │ background scan until the shell's
 *               │ budget, the rate limiter's allowance or maxChunkPages │ EOS │ footer │ flush
 *
 * The EOS counts 8 bytes in `transferred` (ram_save_iterate does; the setup and END chunks'
 * EOS do not). A precopy iteration that spans pumps (option iterationNsMin, iterate.ts) opens
 * the PART once, fills it over its pumps and closes it when it ends: one PART per iteration.
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
  const chunkStart = ctx.main.wireOffsetBytes;
  openRamPart(ctx);
  fillRamPart(ctx, budgetBytes, chunkStart);
  closeRamPart(ctx);
  ctx.updateRemaining();
  ctx.flush();
}

/** The PART header of ram_save_iterate's chunk. An iteration that spans pumps keeps it open. */
export function openRamPart(ctx: SourceContext): void {
  ctx.main.sectionPart(ctx.options.ramSectionId);
}

/**
 * Into the open PART: queued page requests, then background pages within the rate limiter's
 * allowance, maxChunkPages and `budgetBytes` of wire bytes counted from `budgetStartBytes` (the
 * main channel's offset where the shell's pump began).
 */
export function fillRamPart(ctx: SourceContext, budgetBytes: number, budgetStartBytes: number): void {
  const main = ctx.main;
  serveRequests(ctx);
  ctx.countRate();
  const budgetLeft = budgetBytes - (main.wireOffsetBytes - budgetStartBytes);
  // QEMU stops only once the bytes counted exceed the window's budget: at exactly the budget,
  // one more page goes (the scan always sends its first page, then stops at the limit).
  if (budgetLeft > 0 && !isOverBudget(ctx.limiter)) {
    const encoder = ctx.backgroundEncoder();
    scanAndSend(ctx, encoder, encoder.wireOffsetBytes + Math.min(budgetLeft, budgetLeftBytes(ctx.limiter)), ctx.options.maxChunkPages);
  }
}

/** The end of the chunk: multifd's sync, EOS (8 bytes of `transferred`), footer. Not flushed. */
export function closeRamPart(ctx: SourceContext): void {
  ctx.syncMultifd();
  ctx.main.ramEos();
  ctx.stats.addTransferred(EOS_BYTES, ctx.transferPhase());
  ctx.main.footer(ctx.options.ramSectionId);
}
