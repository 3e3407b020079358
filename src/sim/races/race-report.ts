/**
 * How a race sweep is shown: one row per policy (runs, switched to postcopy, hinted, faults on
 * hinted pages, violations by invariant, the longest stall and the most memory held), as text
 * or Markdown, plus the seeds to replay for each failure kind.
 *
 * Pure: strings; the soak script and the tests print them.
 */
import { MiB, NS_PER_MS } from '../../lib/units.ts';
import { INVARIANT_NAMES } from '../checkers/index.ts';
import type { PolicyTally, RaceTally } from './race-sweep.ts';

const HEADER = ['policy', 'runs', 'refused', 'postcopy', 'hinted', 'hint after switch', 'faulted on hinted', 'runs failing', 'violations by invariant', 'longest stall ms', 'most held MiB'];
/** Left-aligned columns (text). */
const TEXT_COLUMNS = new Set([0, 8]);

function violationsText(t: PolicyTally): string {
  const parts = INVARIANT_NAMES.filter((name) => (t.violations[name] ?? 0) > 0).map((name) => `${name} ${t.violations[name]}`);
  const other = Object.keys(t.violations).filter((name) => !INVARIANT_NAMES.includes(name));
  for (const name of other) parts.push(`${name} ${t.violations[name]}`);
  if (t.unexpectedEnd > 0) parts.push(`unexpected end ${t.unexpectedEnd}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

/** The rows of the table, cells as text. */
export function raceRows(tally: RaceTally): string[][] {
  const rows: string[][] = [];
  for (const [policy, t] of Object.entries(tally.policies) as Array<[string, PolicyTally]>) {
    rows.push([
      policy,
      String(t.runs),
      String(t.refused),
      String(t.switched),
      String(t.hinted),
      String(t.hintsAfterSwitch),
      String(t.faultedOnHinted),
      String(t.runsWithViolations),
      violationsText(t),
      (t.longestStallNs / NS_PER_MS).toFixed(3),
      (t.mostHeldBytes / MiB).toFixed(1),
    ]);
  }
  return rows;
}

/** A padded text table. */
export function raceTableText(tally: RaceTally): string {
  const rows = [HEADER, ...raceRows(tally)];
  const widths = HEADER.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => r.map((c, i) => (TEXT_COLUMNS.has(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd());
  return `seeds ${tally.firstSeed}..${tally.firstSeed + tally.seedCount - 1} (${tally.seedCount} per policy)\n${lines.join('\n')}\n${examplesText(tally)}`;
}

/** The same table in Markdown. */
export function raceTableMarkdown(tally: RaceTally): string {
  const sep = HEADER.map((_, i) => (TEXT_COLUMNS.has(i) ? '---' : '---:'));
  const rows = [HEADER, sep, ...raceRows(tally)].map((r) => `| ${r.join(' | ')} |`);
  return `${rows.join('\n')}\n`;
}

/** Seeds to replay, per policy and failure kind. */
export function examplesText(tally: RaceTally): string {
  const out: string[] = [];
  for (const [policy, t] of Object.entries(tally.policies) as Array<[string, PolicyTally]>) {
    for (const [kind, seeds] of Object.entries(t.examples)) out.push(`  ${policy} ${kind}: seeds ${seeds.join(', ')}`);
  }
  return out.length === 0 ? '' : `replay (first seeds):\n${out.join('\n')}\n`;
}
