/**
 * The benchmark table: each row is one measured figure with its unit, the goal it is held to
 * and the ratio of measurement to goal. Rows are printed as an aligned text table and, with
 * --json, as one JSON document. Figures are medians of repeated runs; the raw samples travel
 * in the JSON so nothing is hidden.
 */
export interface BenchRow {
  /** Group heading, e.g. "codec" or "memory". */
  readonly group: string;
  /** What was measured. */
  readonly name: string;
  /** The median of the samples. */
  readonly value: number;
  readonly unit: string;
  /** Every sample taken, in order. */
  readonly samples: readonly number[];
  /** The goal, if this figure has one, and whether higher or lower is better. */
  readonly goal?: { readonly value: number; readonly better: 'higher' | 'lower'; readonly text: string };
  /** A comparison against a baseline measured in the same run (QEMU, memcpy, loopback). */
  readonly versus?: { readonly name: string; readonly value: number };
  readonly note?: string;
  /** Structured figures behind the row (e.g. QEMU's own query-migrate numbers); --json only. */
  readonly detail?: Readonly<Record<string, unknown>>;
}

export function median(samples: readonly number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function goalMet(row: BenchRow): boolean | null {
  if (row.goal === undefined) return null;
  return row.goal.better === 'higher' ? row.value >= row.goal.value : row.value <= row.goal.value;
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

export function renderTable(rows: readonly BenchRow[]): string {
  const header = ['group', 'figure', 'median', 'unit', 'versus', 'ratio', 'goal', 'met'];
  const body = rows.map((r) => {
    const ratio = r.versus !== undefined && r.versus.value !== 0 ? `${fmt(r.value / r.versus.value)}x` : '';
    const met = goalMet(r);
    return [
      r.group,
      r.name,
      fmt(r.value),
      r.unit,
      r.versus !== undefined ? `${r.versus.name} ${fmt(r.versus.value)}` : '',
      ratio,
      r.goal?.text ?? '',
      met === null ? '' : met ? 'yes' : 'NO',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
