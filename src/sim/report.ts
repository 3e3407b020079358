/**
 * How `livemig sim` shows a run: a per-iteration progress table in the spirit of QEMU's
 * guestperf (one row per dirty bitmap sync: time, transferred, remaining, dirty rate,
 * bandwidth), a summary with each invariant's verdict, and the `--json` object whose
 * migration members use query-migrate's names.
 *
 * Pure: text and plain objects; the CLI prints them.
 */
import { MiB, NS_PER_MS, formatBytes } from '../lib/units.ts';
import type { SimRunResult } from './world-report.ts';

function pad(text: string, width: number): string {
  return text.length >= width ? text : ' '.repeat(width - text.length) + text;
}

function ms(ns: number): string {
  return (ns / NS_PER_MS).toFixed(0);
}

function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}

/** The progress table: one row per sync, times relative to the first (the setup sync at `migrate`). */
export function progressTable(result: SimRunResult): string {
  const start = result.progress.length > 0 ? result.progress[0].timeNs : 0;
  const header = ['sync', 'time ms', 'transferred MiB', 'remaining MiB', 'dirty MiB/s', 'bandwidth Mbit/s', 'status'];
  const widths = [5, 8, 16, 14, 12, 17, 16];
  const lines = [header.map((h, i) => pad(h, widths[i])).join(' ')];
  for (const row of result.progress) {
    const cells = [
      String(row.iteration),
      ms(row.timeNs - start),
      mib(row.transferredBytes),
      mib(row.remainingBytes),
      mib(row.dirtyBytesPerSec),
      row.mbps.toFixed(0),
      row.status,
    ];
    lines.push(cells.map((c, i) => pad(c, widths[i])).join(' '));
  }
  return `${lines.join('\n')}\n`;
}

/** The summary: outcome, QMP figures, balloon and postcopy figures, invariant verdicts. */
export function summaryText(result: SimRunResult): string {
  const s = result.source;
  const ram = s.ram;
  const out: string[] = [];
  const expected = result.statusAsExpected ? '(as expected)' : `(expected ${result.scenario.expectedStatus})`;
  out.push(`scenario ${result.scenario.name}, seed ${result.seed}: ${result.status} ${expected}, ended by ${result.endReason} at ${ms(result.endNs)} ms`);
  if (result.refusal !== null) {
    for (const line of result.refusal.reports) out.push(`  destination stderr: ${line}`);
    out.push(`  destination migrate-set-capabilities postcopy-ram: ${result.refusal.errorClass} "${result.refusal.desc}"`);
  } else if (result.errorText !== null) {
    out.push(`  error: ${result.errorText}`);
  }
  if (result.deviceError !== null) out.push(`  device load failed on the destination: ${result.deviceError}`);
  if (ram !== undefined) {
    out.push(`  total-time ${s['total-time'] ?? '-'} ms, downtime ${s.downtime ?? '-'} ms, setup-time ${s['setup-time'] ?? '-'} ms`);
    out.push(`  transferred ${formatBytes(ram.transferred)}, normal ${ram.normal} pages, duplicate ${ram.duplicate} pages, dirty-sync-count ${ram['dirty-sync-count']}, postcopy-requests ${ram['postcopy-requests']}`);
  }
  const b = result.balloon;
  out.push(`  balloon: ${b.hintedPages} pages hinted, DONE ${b.doneDelivered ? 'delivered' : 'not delivered'}, ${formatBytes(b.heldAfterMigrationBytes)} held after migration, ${formatBytes(b.reclaimedBytes)} reclaimed by the shrinker`);
  const f = result.destinationFaults;
  if (f !== null) out.push(`  destination host: ${f.regions} first writes into 2 MiB regions of its RAM, ${(f.stalledNs / NS_PER_MS).toFixed(1)} ms stalled (host.destination-fault)`);
  const p = result.postcopy;
  if (p.switched || p.faults > 0) {
    out.push(`  postcopy: ${p.faults} faults (${p.faultsOnHinted} on hinted pages), ${p.requests} requests (${p.requestsDropped} pages dropped as not dirty, ${p.hintedZeroPages} hinted pages answered with ZERO), longest stall ${(p.maxStallNs / NS_PER_MS).toFixed(3)} ms (bound ${(p.stallBoundNs / NS_PER_MS).toFixed(3)} ms), blocktime ${p.blocktimeMs ?? '-'} ms`);
  }
  out.push('  invariants:');
  for (const v of result.verdicts) out.push(`    ${v.ok ? 'ok  ' : 'FAIL'} ${v.name}: ${v.detail}`);
  out.push(`  trace-hash ${result.traceHash} (${result.traceLines} lines)`);
  out.push(result.ok ? 'PASS' : 'FAIL');
  return `${out.join('\n')}\n`;
}

/** The `--json` object (query-migrate names for the migration's own members). */
export function jsonReport(result: SimRunResult): Record<string, unknown> {
  const s = result.source;
  const start = result.progress.length > 0 ? result.progress[0].timeNs : 0;
  return {
    scenario: result.scenario.name,
    status: result.status,
    'end-reason': result.endReason,
    ...(result.errorText === null ? {} : { 'error-desc': result.errorText }),
    ...(result.refusal === null ? {} : { refusal: { class: result.refusal.errorClass, desc: result.refusal.desc, reports: result.refusal.reports } }),
    ...(result.deviceError === null ? {} : { 'device-error': result.deviceError }),
    'total-time': s['total-time'] ?? null,
    downtime: s.downtime ?? null,
    'setup-time': s['setup-time'] ?? null,
    ram: s.ram ?? null,
    destination: result.destination,
    balloon: {
      'hinted-pages': result.balloon.hintedPages,
      'held-after-migration-bytes': result.balloon.heldAfterMigrationBytes,
      'done-delivered': result.balloon.doneDelivered,
      'reclaimed-bytes': result.balloon.reclaimedBytes,
      'destination-hints': result.balloon.destinationHints,
      'hints-after-switch': result.balloon.hintsAfterSwitch,
    },
    'destination-faults': result.destinationFaults === null ? null : { regions: result.destinationFaults.regions, 'stalled-ms': result.destinationFaults.stalledNs / NS_PER_MS },
    postcopy: {
      switched: result.postcopy.switched,
      blocktime: result.postcopy.blocktimeMs,
      'max-stall-ms': result.postcopy.maxStallNs / NS_PER_MS,
      'stall-bound-ms': result.postcopy.stallBoundNs / NS_PER_MS,
      faults: result.postcopy.faults,
      requests: result.postcopy.requests,
      'requests-dropped': result.postcopy.requestsDropped,
      'hinted-zero-pages': result.postcopy.hintedZeroPages,
      'faults-on-hinted': result.postcopy.faultsOnHinted,
    },
    progress: result.progress.map((row) => ({
      'dirty-sync-count': row.iteration,
      'time-ms': (row.timeNs - start) / NS_PER_MS,
      transferred: row.transferredBytes,
      remaining: row.remainingBytes,
      'dirty-bytes-per-second': row.dirtyBytesPerSec,
      mbps: row.mbps,
    })),
    invariants: result.verdicts.map((v) => ({ name: v.name, ok: v.ok, detail: v.detail })),
    ok: result.ok,
    seed: result.seed,
    'trace-hash': result.traceHash,
  };
}
