/**
 * The fidelity table: one line per lab case, lab figures next to the simulator's, with the
 * deviation of each compared figure and a mark where it is outside its tolerance. Markdown, so
 * docs/fidelity.md can hold it as printed.
 */
import { MiB } from '../../lib/units.ts';
import type { FidelityRow, FigureVerdict } from './compare.ts';

function verdictOf(row: FidelityRow, name: FigureVerdict['name']): FigureVerdict | undefined {
  return row.verdicts.find((v) => v.name === name);
}

function cell(row: FidelityRow, name: FigureVerdict['name'], format: (x: number) => string): string {
  const v = verdictOf(row, name);
  if (v === undefined) return '-';
  const mark = v.ok ? '' : ' ✗';
  return `${format(v.lab as number)} / ${format(v.sim as number)} (${v.deviation})${mark}`;
}

const ms = (x: number): string => `${Math.round(x)}`;
const mibs = (x: number): string => (x / MiB).toFixed(1);
const count = (x: number): string => `${x}`;

/** The markdown table of `rows`. */
export function fidelityTable(rows: readonly FidelityRow[]): string {
  const header = '| case | runs | verdict lab/sim | total-time ms lab / sim | transferred MiB lab / sim | dirty syncs lab / sim | downtime ms lab / sim |';
  const rule = '|---|---|---|---|---|---|---|';
  const lines = [header, rule];
  for (const row of rows) {
    const c = row.labCase;
    const v = verdictOf(row, 'verdict');
    const verdict = `${row.lab.completed ? 'completed' : 'not'} / ${row.sim.completed ? 'completed' : 'not'}${v?.ok === false ? ' ✗' : ''}`;
    lines.push(`| ${c.id} | ${c.completed}/${c.runs.length} | ${verdict} | ${cell(row, 'total-time', ms)} | ${cell(row, 'transferred', mibs)} | ${cell(row, 'dirty-sync-count', count)} | ${cell(row, 'downtime', ms)} |`);
  }
  const failed = rows.filter((r) => !r.ok).length;
  lines.push('', `${rows.length - failed} of ${rows.length} cases within tolerance (±15% on time, bytes and syncs; downtime within 10×).`);
  return lines.join('\n');
}
