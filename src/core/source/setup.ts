/**
 * `start`: the beginning of a source migration, facts §1.7 steps 1–5 in QEMU 7.2's order:
 *
 *   status none → setup
 *   header, CONFIGURATION
 *   [postcopy-ram | return-path]  OPEN_RETURN_PATH, PING(1)
 *   [postcopy-ram]                POSTCOPY_ADVISE(0x1000, TPS)    [dirty-bitmaps only: empty ADVISE]
 *   [multifd]                     each channel's init packet (on its own connection)
 *   START `ram`: bitmap all set, setup sync (BEFORE, AFTER, MIGRATION_PASS 1), MEM_SIZE list,
 *                [multifd] a SYNC packet per channel, EOS, footer
 *   SETUP notifier
 *   status setup → active
 *
 * What it deliberately doesn't do: the failover-unplug wait (`wait-unplug`), x-colo's
 * ENABLE_COLO, x-ignore-shared GPAs or huge-page MEM_SIZE entries (all refused or absent).
 */
import { TARGET_PAGE_SIZE } from '../../lib/units.ts';
import { RAM_SECTION_IDSTR, RAM_SECTION_VERSION } from '../../format/constants.ts';
import { openBandwidthWindow } from '../bandwidth.ts';
import { createRateLimiter } from '../rate-limiter.ts';
import { syncDirtyBitmap } from './dirty-sync.ts';
import type { SourceContext } from './source-context.ts';
import { SourceError } from './source-types.ts';

/** QEMU's ram_pagesize_summary for plain RAM (every block has 4 KiB pages). */
const RAM_PAGESIZE_SUMMARY = 0x1000;

/** Runs the setup and goes active. Only from the `idle` phase (one engine, one migration). */
export function startMigration(ctx: SourceContext, nowNs: number): void {
  if (ctx.phase.kind !== 'idle') {
    throw new SourceError('MIG_ERR_SOURCE_STATE', `migrate: this source engine already ran (status ${ctx.status})`);
  }
  ctx.setStatus('setup');
  ctx.stats.begin(nowNs, ctx.ram.blocks.totalBytes, ctx.params.downtimeLimitMs);
  ctx.limiter = createRateLimiter(ctx.params.maxBandwidthBytesPerSec, nowNs);
  ctx.window = openBandwidthWindow(nowNs, 0, 0);
  ctx.multifd?.start(ctx.options.uuid);
  writePreamble(ctx);
  writeRamSetup(ctx, nowNs);
  ctx.hooks.precopyNotify('setup', nowNs, true);
  ctx.flush();
  ctx.stats.markSetupDone(nowNs);
  ctx.setStatus('active');
  ctx.phase = { kind: 'precopy', iteration: null };
}

/** Header, CONFIGURATION, return-path commands and ADVISE. */
function writePreamble(ctx: SourceContext): void {
  const e = ctx.main;
  e.header();
  const uuid = ctx.caps['validate-uuid'] ? ctx.options.uuid : null;
  e.configuration(uuid === null ? { machine: ctx.options.machine } : { machine: ctx.options.machine, uuid });
  if (ctx.returnPath) {
    e.command({ kind: 'open-return-path' });
    e.command({ kind: 'ping', value: 1 });
  }
  if (ctx.caps['postcopy-ram']) {
    e.command({ kind: 'postcopy-advise', pageSizeSummary: RAM_PAGESIZE_SUMMARY, targetPageSize: TARGET_PAGE_SIZE });
  } else if (ctx.caps['dirty-bitmaps']) {
    e.command({ kind: 'postcopy-advise-empty' });
  }
}

/** The START section of `ram`: every block page dirty, the setup sync, the block list. */
function writeRamSetup(ctx: SourceContext, nowNs: number): void {
  const e = ctx.main;
  const id = ctx.options.ramSectionId;
  e.sectionStart(id, RAM_SECTION_IDSTR, 0, RAM_SECTION_VERSION);
  for (const block of ctx.blocks) ctx.bitmap.setRange(block.startPage, block.startPage + block.pageCount);
  syncDirtyBitmap(ctx, nowNs, { notifiers: true, vmRunning: true });
  e.ramMemSize(ctx.blocks.map((b) => ({ name: b.name, usedLengthBytes: b.sizeBytes })));
  ctx.syncMultifd();
  e.ramEos();
  e.footer(id);
}
