/**
 * The five free-page-hint × postcopy policies (DESIGN §2) on one seeded scenario, side by side:
 * the scenario is loaded once per policy with `devices.balloon.free-page-hint-postcopy` set,
 * run with the same seed, and summed up in one row each: whether the destination allowed
 * postcopy, total time, downtime, bytes sent, pages hinted, hinted memory the guest still holds,
 * the longest fault stall, and each invariant's verdict. Also how much of hinting's byte savings
 * each policy keeps (against `overrule`, which never hints with postcopy-ram on; `legacy`'s
 * savings are hinting's whole).
 *
 * Pure: scenario text in, rows and text out (cli/compare.ts reads files and prints).
 */
import { FREE_PAGE_HINT_POSTCOPY_POLICIES, type FreePageHintPostcopyPolicy } from '../devices/balloon/postcopy-policy.ts';
import { MiB, NS_PER_MS } from '../lib/units.ts';
import { INVARIANT_NAMES } from './checkers/index.ts';
import { jsonReport } from './report.ts';
import { runScenario } from './runner.ts';
import { loadScenario, type ScenarioOverride } from './scenario/scenario.ts';
import type { SimRunResult } from './world-report.ts';

/** One policy's run. */
export interface CompareRow {
  readonly policy: FreePageHintPostcopyPolicy;
  readonly result: SimRunResult;
}

/** What a comparison needs. */
export interface CompareInput {
  /** The scenario's YAML text. */
  readonly text: string;
  /** `--set` overrides, applied before the policy's. */
  readonly overrides: readonly ScenarioOverride[];
  /** The seed of every run; default the scenario's. */
  readonly seed?: number;
  /** Called before each policy's run (progress). */
  readonly onPolicy?: (policy: FreePageHintPostcopyPolicy) => void;
}

/** Runs the five policies; ScenarioError when the scenario cannot be built. */
export function comparePolicies(input: CompareInput): CompareRow[] {
  return FREE_PAGE_HINT_POSTCOPY_POLICIES.map((policy) => {
    input.onPolicy?.(policy);
    const override: ScenarioOverride = { path: 'devices.balloon.free-page-hint-postcopy', valueText: policy };
    const scenario = loadScenario(input.text, [...input.overrides, override]);
    return { policy, result: runScenario(scenario, { seed: input.seed }) };
  });
}

/** Whether the destination allowed postcopy, and whether the source used it. */
export function postcopyCell(result: SimRunResult): string {
  if (result.refusal !== null) return 'no (refused)';
  if (!result.scenario.capabilities['postcopy-ram']) return 'off';
  return result.postcopy.switched ? 'yes, switched' : 'yes, unused';
}

function verdictCell(result: SimRunResult, name: string): string {
  const v = result.verdicts.find((x) => x.name === name);
  if (v === undefined) return '-';
  if (!v.ok) return 'FAIL';
  return v.detail.startsWith('not applicable') ? 'n/a' : 'ok';
}

const HEADER = ['policy', 'postcopy allowed?', 'total ms', 'downtime ms', 'sent MiB', 'pages hinted', 'held after MiB', 'longest stall ms', ...INVARIANT_NAMES];
/** Left-aligned columns. */
const TEXT_COLUMNS = new Set([0, 1]);

/** The cells of each row (see HEADER). */
export function compareCells(rows: readonly CompareRow[]): string[][] {
  return rows.map(({ policy, result }) => {
    const s = result.source;
    const refused = result.refusal !== null;
    return [
      policy,
      postcopyCell(result),
      refused ? '-' : String(s['total-time'] ?? '-'),
      refused ? '-' : String(s.downtime ?? '-'),
      refused ? '-' : ((s.ram?.transferred ?? 0) / MiB).toFixed(1),
      String(result.balloon.hintedPages),
      (result.balloon.heldAfterMigrationBytes / MiB).toFixed(1),
      (result.postcopy.maxStallNs / NS_PER_MS).toFixed(3),
      ...INVARIANT_NAMES.map((name) => verdictCell(result, name)),
    ];
  });
}

/**
 * Share of hinting's byte savings `policy` keeps: (overrule − policy) / (overrule − legacy),
 * bytes sent; null when hinting saved nothing or a run is missing or refused.
 */
export function savingsKept(rows: readonly CompareRow[], policy: FreePageHintPostcopyPolicy): number | null {
  const sent = (p: FreePageHintPostcopyPolicy): number | null => {
    const row = rows.find((r) => r.policy === p);
    return row === undefined || row.result.refusal !== null ? null : row.result.source.ram?.transferred ?? null;
  };
  const base = sent('overrule');
  const full = sent('legacy');
  const mine = sent(policy);
  if (base === null || full === null || mine === null || base <= full) return null;
  return (base - mine) / (base - full);
}

/** Lines under the table: the refusal's texts, hinting's savings. */
export function compareNotes(rows: readonly CompareRow[]): string[] {
  const notes: string[] = [];
  for (const { policy, result } of rows) {
    if (result.refusal !== null) {
      notes.push(`${policy}: destination stderr "${result.refusal.reports.join('" "')}"; migrate-set-capabilities postcopy-ram: ${result.refusal.errorClass} "${result.refusal.desc}"`);
    } else if (result.errorText !== null) {
      notes.push(`${policy}: ${result.errorText}`);
    }
  }
  const kept = savingsKept(rows, 'track');
  const base = rows.find((r) => r.policy === 'overrule')?.result.source.ram?.transferred;
  const full = rows.find((r) => r.policy === 'legacy')?.result.source.ram?.transferred;
  if (kept !== null && base !== undefined && full !== undefined) {
    notes.push(`hinting saves ${((base - full) / MiB).toFixed(1)} MiB against overrule (legacy); track keeps ${(kept * 100).toFixed(1)}% of it`);
  } else {
    notes.push('hinting saved no bytes against overrule in this run');
  }
  return notes;
}

/** The padded text table and its notes. */
export function compareText(rows: readonly CompareRow[]): string {
  const table = [HEADER, ...compareCells(rows)];
  const widths = HEADER.map((_, i) => Math.max(...table.map((r) => r[i].length)));
  const lines = table.map((r) => r.map((c, i) => (TEXT_COLUMNS.has(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd());
  const first = rows[0]?.result;
  const head = first === undefined ? '' : `scenario ${first.scenario.name}, seed ${first.seed}\n`;
  return `${head}${lines.join('\n')}\n${compareNotes(rows).map((n) => `  ${n}`).join('\n')}\n`;
}

/** The table in Markdown, and its notes as a list. */
export function compareMarkdown(rows: readonly CompareRow[]): string {
  const sep = HEADER.map((_, i) => (TEXT_COLUMNS.has(i) ? '---' : '---:'));
  const lines = [HEADER, sep, ...compareCells(rows)].map((r) => `| ${r.join(' | ')} |`);
  return `${lines.join('\n')}\n\n${compareNotes(rows).map((n) => `- ${n}`).join('\n')}\n`;
}

/** `--json`: one object per policy, `livemig sim --json`'s fields plus `policy`. */
export function compareJson(rows: readonly CompareRow[]): Array<Record<string, unknown>> {
  return rows.map(({ policy, result }) => ({ policy, 'postcopy-allowed': result.refusal === null, ...jsonReport(result) }));
}
