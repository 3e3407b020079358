/**
 * A finished simulator run (sim/world-report.ts SimRunResult) as the views' RunSummary and as
 * one bar group of a comparison: the headline figures of `livemig sim`'s summary, with the
 * invariant verdicts.
 */
import { formatBytes, NS_PER_MS } from '../lib/units.ts';
import type { MigrationStatsQmp } from '../core/stats.ts';
import type { SimRunResult } from '../sim/world-report.ts';
import type { CompareEntry, RunSummary } from './api-types.ts';

function ms(value: number | undefined | null): string {
  return value === undefined || value === null ? '-' : `${value} ms`;
}

/** The RAM figures of a summary, from query-migrate's `ram` (simulated and real runs alike). */
export function ramFigures(ram: MigrationStatsQmp): [string, string][] {
  return [
    ['transferred', formatBytes(ram.transferred)],
    ['normal pages', ram.normal.toLocaleString('en-US')],
    ['zero pages', ram.duplicate.toLocaleString('en-US')],
    ['dirty syncs', String(ram['dirty-sync-count'])],
  ];
}

/** The summary of a finished run. */
export function summaryOfResult(result: SimRunResult): RunSummary {
  const s = result.source;
  const ram = s.ram;
  const figures: [string, string][] = [
    ['status', `${result.status}${result.statusAsExpected ? '' : ` (expected ${result.scenario.expectedStatus})`}`],
    ['ended by', result.endReason],
    ['total-time', ms(s['total-time'])],
    ['downtime', ms(s.downtime)],
  ];
  if (ram !== undefined) figures.push(...ramFigures(ram));
  if (result.balloon.hintedPages > 0) figures.push(['hinted pages', result.balloon.hintedPages.toLocaleString('en-US')]);
  const p = result.postcopy;
  if (p.switched || p.faults > 0) {
    figures.push(
      ['postcopy faults', String(p.faults)],
      ['page requests', String(p.requests)],
      ['longest stall', `${(p.maxStallNs / NS_PER_MS).toFixed(3)} ms (bound ${(p.stallBoundNs / NS_PER_MS).toFixed(3)} ms)`],
    );
  }
  const error = [result.errorText, result.deviceError === null ? null : `device load: ${result.deviceError}`].filter((e) => e !== null).join('; ');
  return {
    status: result.status,
    endReason: result.endReason,
    endNs: result.endNs,
    ok: result.ok,
    figures,
    invariants: result.verdicts.map((v) => ({ name: v.name, ok: v.ok, detail: v.detail })),
    traceHash: result.traceHash,
    error: error === '' ? null : error,
  };
}

/** One run of a comparison, labelled (e.g. by policy). */
export function compareEntryOf(label: string, result: SimRunResult): CompareEntry {
  const s = result.source;
  return {
    label,
    status: result.status,
    ok: result.ok,
    totalTimeMs: s['total-time'] ?? null,
    downtimeMs: s.downtime ?? null,
    transferredBytes: s.ram?.transferred ?? 0,
    maxStallMs: result.postcopy.maxStallNs / NS_PER_MS,
    postcopyRequests: result.postcopy.requests,
  };
}
