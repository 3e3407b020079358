/**
 * `npm run bench`: runs the benchmark groups of groups.ts and prints one table (table.ts)
 * with each figure's median, unit, baseline, ratio and goal; notes follow the table. Flags:
 *   --json        one JSON document (rows with every sample, the machine, the duration)
 *   --quick       smaller sizes and fewer runs
 *   --only GROUP  run only these groups (repeatable or comma-separated); --list names them
 * Progress goes to stderr. A group that can measure nothing here (BenchSkipped) is reported
 * after the table and under `skipped` in --json; row-less notes go under `notes`. Exit code 0
 * when it ran (goals missed show as "NO" in the table), 2 on a bad flag or unknown group.
 */
import { cpus, totalmem } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { benchGroups } from './groups.ts';
import { BenchSkipped, hrtimeNs } from './registry.ts';
import type { BenchContext, BenchGroup } from './registry.ts';
import { goalMet, renderTable } from './table.ts';
import type { BenchRow } from './table.ts';

export interface BenchIo {
  out(text: string): void;
  err(text: string): void;
}

interface BenchFlags {
  json?: boolean;
  quick?: boolean;
  only: string[];
  list?: boolean;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter((s) => s !== '')];
}

/** Runs the bench with `args` (no node/script prefix); returns the exit code. */
export async function runBench(args: string[], io: BenchIo, groups: readonly BenchGroup[] = benchGroups()): Promise<number> {
  const program = new Command('bench')
    .description('livemig benchmarks: ' + groups.map((g) => g.name).join(', '))
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .option('--json', 'print one JSON document')
    .option('--quick', 'smaller sizes and fewer runs')
    .option('--only <group>', 'run only this group (repeatable, or comma-separated)', collect, [])
    .option('--list', 'list the groups and exit');
  try {
    program.parse(args, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.code === 'commander.helpDisplayed' ? 0 : 2;
    throw e;
  }
  const flags = program.opts<BenchFlags>();
  if (flags.list === true) {
    for (const g of groups) io.out(`${g.name}  ${g.description}\n`);
    return 0;
  }
  const unknown = flags.only.filter((name) => !groups.some((g) => g.name === name));
  if (unknown.length > 0) {
    io.err(`bench: unknown group ${unknown.join(', ')} (groups: ${groups.map((g) => g.name).join(', ')})\n`);
    return 2;
  }
  const chosen = flags.only.length === 0 ? groups : groups.filter((g) => flags.only.includes(g.name));
  const ctx: BenchContext = { quick: flags.quick === true, clockNs: hrtimeNs, progress: (line) => io.err(`bench: ${line}\n`) };
  const started = hrtimeNs();
  const rows: BenchRow[] = [];
  const skipped: Array<{ group: string; reason: string }> = [];
  const notes: Array<{ group: string; text: string }> = [];
  for (const group of chosen) {
    const groupCtx: BenchContext = { ...ctx, note: (text) => void notes.push({ group: group.name, text }) };
    try {
      rows.push(...(await group.run(groupCtx)));
    } catch (error) {
      if (!(error instanceof BenchSkipped)) throw error;
      skipped.push({ group: group.name, reason: error.reason });
      ctx.progress(`${group.name}: skipped: ${error.reason}`);
    }
  }
  const durationS = (hrtimeNs() - started) / 1e9;

  if (flags.json === true) {
    const machine = { cpu: cpus()[0]?.model ?? 'unknown', cpus: cpus().length, memoryBytes: totalmem(), node: process.version };
    const doc = { quick: ctx.quick, groups: chosen.map((g) => g.name), machine, durationS, rows: rows.map((r) => ({ ...r, met: goalMet(r) })), skipped, notes };
    io.out(`${JSON.stringify(doc, null, 2)}\n`);
    return 0;
  }
  const lines = [renderTable(rows), ''];
  for (const r of rows) if (r.note !== undefined) lines.push(`${r.group} / ${r.name}: ${r.note}`);
  for (const n of notes) lines.push(`${n.group}: ${n.text}`);
  for (const s of skipped) lines.push(`${s.group}: skipped: ${s.reason}`);
  lines.push(`${ctx.quick ? 'quick run' : 'full run'} in ${durationS.toFixed(1)} s on ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} CPUs), Node ${process.version}`);
  io.out(`${lines.join('\n')}\n`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runBench(process.argv.slice(2), {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
  });
}
