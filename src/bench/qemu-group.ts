/**
 * The `qemu` benchmark group: QEMU 7.2 → QEMU 7.2 over loopback TCP on this machine, the
 * baselines livemig is measured against. Modes (src/harness/qemu-migrate.ts drives them):
 *   - precopy of non-zero RAM (every page a PAGE record), one channel;
 *   - the same with the destination's RAM preallocated (memory-backend-ram prealloc=on): QEMU
 *     touches it at start-up, as livemig's destination does while it listens (host/prefault.ts),
 *     so neither pays first-touch faults inside the timed migration. This is the baseline the
 *     livemig group's throughput goals compare with, and the multifd and TLS modes preallocate
 *     too; on a host whose free memory goes back to its hypervisor, the plain destination's
 *     faults cost 0.1 to 2.3 s per GiB (docs/performance.md);
 *   - precopy of all-zero RAM (every page a ZERO record): a time;
 *   - multifd with 2 and with 4 channels (non-zero RAM);
 *   - precopy over TLS (tls-creds-x509, peers verified; certificates made with openssl);
 *   - the latency of a postcopy forced fault: pmemsave on the destination of a page it does
 *     not have yet, against pmemsave of a page it has (the QMP cost alone).
 * Every precopy-type pair waits benchSettleMs() (1 s) after its start before `migrate`, as the
 * livemig pairs do: a QEMU destination migrated into at once still spends CPU on its start-up
 * (measured: 2575 against 475 ms per GiB, scripts/perf/qemu-pair.ts), which is not migration.
 * 2 GiB and medians of 3 runs (--quick: 256 MiB, 1 run); the repetitions go round all modes
 * in turn, so that noise spreads over them. GB/s = RAM bytes (1 GB = 1e9) / seconds from the
 * `migrate` command to the destination's `completed` event; each row also carries QEMU's own
 * query-migrate figures (total-time, downtime, mbps, transferred) in its note and `detail`.
 *
 * `qemuBaselines(opts)` returns the structured results, so that later groups can put livemig
 * beside QEMU in the same run. A missing QEMU skips the group (BenchSkipped) with the reason; a
 * mode that fails (e.g. TLS) becomes a row-less note with QEMU's exact error text.
 */
import { join } from 'node:path';
import {
  makeQemuTlsCreds,
  measurePostcopyFault,
  measurePrecopy,
  type MeasuredPrecopy,
  type PostcopyFaultRun,
  type PrecopyRun,
  type SourceRam,
} from '../harness/qemu-migrate.ts';
import { writePatternFile } from '../harness/ram-pattern.ts';
import { qemuAvailability, type QemuAvailability } from '../harness/qemu-binary.ts';
import { makeTempDir, removeTempDir } from '../harness/ram-image.ts';
import { formatBytes, GiB, MiB } from '../lib/units.ts';
import { BenchSkipped, benchSettleMs, hrtimeNs } from './registry.ts';
import type { BenchContext, BenchGroup } from './registry.ts';
import { median } from './table.ts';
import type { BenchRow } from './table.ts';

export type QemuMode = 'precopy' | 'precopy-prealloc' | 'zero' | 'multifd-2' | 'multifd-4' | 'tls' | 'postcopy-fault';
export const QEMU_MODES: readonly QemuMode[] = ['precopy', 'precopy-prealloc', 'zero', 'multifd-2', 'multifd-4', 'tls', 'postcopy-fault'];

export interface QemuBaselineOptions {
  readonly sizeBytes: number;
  /** Repetitions of each mode. */
  readonly runs: number;
  /** Which modes; default all (QEMU_MODES). */
  readonly modes?: readonly QemuMode[];
  readonly progress?: (line: string) => void;
  readonly clockNs?: () => number;
  /** For tests: what qemuAvailability() would say. */
  readonly availability?: QemuAvailability;
  /** Each QEMU's watchdog. Default 120 s. */
  readonly watchdogMs?: number;
}

/** A precopy-type mode: every run's figures and the medians the table shows. */
export interface PrecopyBaseline {
  readonly kind: 'precopy';
  readonly mode: QemuMode;
  readonly label: string;
  readonly sizeBytes: number;
  readonly runs: readonly MeasuredPrecopy[];
  /** Per run: RAM bytes / end-to-end seconds / 1e9. */
  readonly gbPerSec: readonly number[];
  readonly endToEndMs: readonly number[];
  readonly medianGbPerSec: number;
  readonly medianEndToEndMs: number;
  /** Medians of QEMU's own figures over the runs that reported them (null when none did). */
  readonly medianTotalTimeMs: number | null;
  readonly medianDowntimeMs: number | null;
  readonly medianMbps: number | null;
  readonly medianTransferredBytes: number | null;
}

export interface PostcopyFaultBaseline {
  readonly kind: 'postcopy-fault';
  readonly mode: 'postcopy-fault';
  readonly label: string;
  readonly sizeBytes: number;
  readonly runs: readonly PostcopyFaultRun[];
  /** Every fault of every run, ms. */
  readonly faultMs: readonly number[];
  readonly residentMs: readonly number[];
  readonly medianFaultMs: number;
  readonly medianResidentMs: number;
}

export interface FailedBaseline {
  readonly kind: 'failed';
  readonly mode: QemuMode;
  readonly label: string;
  /** The error, with QEMU's own text (QMP error-desc and stderr) where there was one. */
  readonly error: string;
}

export type QemuBaseline = PrecopyBaseline | PostcopyFaultBaseline | FailedBaseline;

export interface QemuBaselines {
  /** Why nothing was measured (QEMU missing, setup failed); null when it ran. */
  readonly skipped: string | null;
  /** `QEMU emulator version 7.2.x ...` */
  readonly qemuVersion: string | null;
  readonly sizeBytes: number;
  readonly runsPerMode: number;
  readonly modes: Partial<Record<QemuMode, QemuBaseline>>;
}

const LABELS: Record<QemuMode, string> = {
  precopy: 'precopy, non-zero RAM, 1 channel, destination RAM not preallocated',
  'precopy-prealloc': 'precopy, non-zero RAM, 1 channel, destination RAM preallocated',
  zero: 'precopy, all-zero RAM',
  'multifd-2': 'multifd 2 channels, non-zero RAM, destination RAM preallocated',
  'multifd-4': 'multifd 4 channels, non-zero RAM, destination RAM preallocated',
  tls: 'precopy over TLS (x509), non-zero RAM, destination RAM preallocated',
  'postcopy-fault': 'postcopy forced fault (pmemsave of a late page)',
};

function medianOrNull(values: ReadonlyArray<number | null>): number | null {
  const present = values.filter((v): v is number => v !== null);
  return present.length === 0 ? null : median(present);
}

function precopyBaseline(mode: QemuMode, sizeBytes: number, runs: readonly MeasuredPrecopy[]): PrecopyBaseline {
  const gbPerSec = runs.map((r) => sizeBytes / (r.endToEndMs * 1e6));
  const endToEndMs = runs.map((r) => r.endToEndMs);
  return {
    kind: 'precopy',
    mode,
    label: LABELS[mode],
    sizeBytes,
    runs,
    gbPerSec,
    endToEndMs,
    medianGbPerSec: median(gbPerSec),
    medianEndToEndMs: median(endToEndMs),
    // 7.2 may leave total-time at 0 with multifd; a 0 is no figure.
    medianTotalTimeMs: medianOrNull(runs.map((r) => (r.totalTimeMs === 0 ? null : r.totalTimeMs))),
    medianDowntimeMs: medianOrNull(runs.map((r) => r.downtimeMs)),
    medianMbps: medianOrNull(runs.map((r) => r.mbps)),
    medianTransferredBytes: medianOrNull(runs.map((r) => r.transferredBytes)),
  };
}

/**
 * Runs the QEMU → QEMU baselines. Never throws for a QEMU problem: a missing QEMU or a failed
 * setup gives `skipped`, a failed mode gives a `failed` entry with the error text.
 */
export async function qemuBaselines(options: QemuBaselineOptions): Promise<QemuBaselines> {
  const { sizeBytes, runs } = options;
  const modes = options.modes ?? QEMU_MODES;
  const progress = options.progress ?? (() => undefined);
  const clockNs = options.clockNs ?? hrtimeNs;
  const none = (skipped: string, qemuVersion: string | null = null): QemuBaselines => ({ skipped, qemuVersion, sizeBytes, runsPerMode: runs, modes: {} });
  const availability = options.availability ?? qemuAvailability();
  if (!availability.ok) return none(availability.reason);
  const qemuPath = availability.path;
  const qemuVersion = availability.version;

  let dir: string | null = null;
  const cleanup = (): void => {
    if (dir !== null) removeTempDir(dir);
    dir = null;
  };
  // Ctrl-C or a kill during the run: remove the 2 GiB pattern file; qemu.ts's exit hook kills the QEMUs.
  const onSignal = (signal: NodeJS.Signals): void => {
    cleanup();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    dir = makeTempDir('livemig-bench-qemu-');
    const patternPath = join(dir, 'pattern.ram');
    const needsPattern = modes.some((m) => m !== 'zero');
    if (needsPattern) {
      progress(`qemu: writing ${formatBytes(sizeBytes)} of non-zero pattern RAM to ${patternPath}`);
      try {
        writePatternFile(patternPath, sizeBytes);
      } catch (error) {
        return none(`cannot write the pattern RAM file ${patternPath}: ${(error as Error).message}`, qemuVersion);
      }
    }
    const patternRam: SourceRam = { kind: 'file', path: patternPath };
    const failed = new Map<QemuMode, string>();
    const precopyRuns = new Map<QemuMode, MeasuredPrecopy[]>();
    const postcopyRuns: PostcopyFaultRun[] = [];
    let tlsDir: string | null = null;
    if (modes.includes('tls')) {
      try {
        tlsDir = makeQemuTlsCreds(join(dir, 'tls'));
      } catch (error) {
        failed.set('tls', `making the x509 credentials: ${(error as Error).message}`);
      }
    }
    const common = { sizeBytes, qemuPath, clockNs, watchdogMs: options.watchdogMs };
    for (let rep = 1; rep <= runs; rep++) {
      for (const mode of modes) {
        if (failed.has(mode)) continue;
        progress(`qemu: ${LABELS[mode]}, ${formatBytes(sizeBytes)}, run ${rep}/${runs}`);
        try {
          if (mode === 'postcopy-fault') {
            postcopyRuns.push(await measurePostcopyFault({ ...common, patternPath }));
            continue;
          }
          const run = await measurePrecopy({
            ...common,
            source: mode === 'zero' ? { kind: 'zero' } : patternRam,
            multifdChannels: mode === 'multifd-2' ? 2 : mode === 'multifd-4' ? 4 : 0,
            tlsCredsDir: mode === 'tls' ? (tlsDir ?? undefined) : undefined,
            // Every non-zero mode but the plain one preallocates the destination's RAM (the
            // all-zero mode writes no page there).
            destinationPrealloc: mode !== 'precopy' && mode !== 'zero',
            settleMs: benchSettleMs(),
          });
          if (run.badPages.length > 0) throw new Error(`destination RAM differs from the source at pages ${run.badPages.join(', ')}`);
          const list = precopyRuns.get(mode) ?? [];
          list.push(run);
          precopyRuns.set(mode, list);
        } catch (error) {
          failed.set(mode, (error as Error).message);
          progress(`qemu: ${LABELS[mode]} failed: ${(error as Error).message}`);
        }
      }
    }
    const result: Partial<Record<QemuMode, QemuBaseline>> = {};
    for (const mode of modes) {
      const error = failed.get(mode);
      if (error !== undefined) {
        result[mode] = { kind: 'failed', mode, label: LABELS[mode], error };
      } else if (mode === 'postcopy-fault') {
        const faultMs = postcopyRuns.flatMap((r) => r.faultMs);
        const residentMs = postcopyRuns.flatMap((r) => r.residentMs);
        if (faultMs.length === 0) {
          const arrived = postcopyRuns.reduce((n, r) => n + r.arrivedMs.length, 0);
          result[mode] = { kind: 'failed', mode, label: LABELS[mode], error: `no late-page read raised a postcopy page request (${arrived} read(s) found the page already received)` };
          continue;
        }
        result[mode] = {
          kind: 'postcopy-fault',
          mode,
          label: LABELS[mode],
          sizeBytes,
          runs: postcopyRuns,
          faultMs,
          residentMs,
          medianFaultMs: median(faultMs),
          medianResidentMs: median(residentMs),
        };
      } else {
        result[mode] = precopyBaseline(mode, sizeBytes, precopyRuns.get(mode) ?? []);
      }
    }
    return { skipped: null, qemuVersion, sizeBytes, runsPerMode: runs, modes: result };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    cleanup();
  }
}

/**
 * The baselines of this process's last `qemu` group run, for later groups (livemig) to put
 * their figures beside without measuring QEMU twice; null before it ran.
 */
export let lastQemuBaselines: QemuBaselines | null = null;

function fmtMs(ms: number | null): string {
  return ms === null ? 'n/a' : `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
}

function precopyFigures(b: PrecopyBaseline): Record<string, unknown> {
  return {
    endToEndMs: b.endToEndMs,
    wallMs: b.runs.map((r) => r.wallMs),
    eventMs: b.runs.map((r) => r.eventMs),
    totalTimeMs: b.runs.map((r) => r.totalTimeMs),
    setupTimeMs: b.runs.map((r) => r.setupTimeMs),
    downtimeMs: b.runs.map((r) => r.downtimeMs),
    mbps: b.runs.map((r) => r.mbps),
    transferredBytes: b.runs.map((r) => r.transferredBytes),
    normalPages: b.runs.map((r) => r.normalPages),
    duplicatePages: b.runs.map((r) => r.duplicatePages),
    multifdBytes: b.runs.map((r) => r.multifdBytes),
  };
}

/** Runs shorter than this get no "% of a core" in cpuPerGiBNote. */
const CPU_SHARE_MIN_WALL_MS = 500;

/**
 * "CPU per GiB: source X ms, destination Y ms" from the runs' median CPU times (user + system of
 * each process, `migrate` → destination completed), or '' without them. A side near one core
 * (1000 ms per second of the run) is what bounds the pair.
 */
export function cpuPerGiBNote(runs: ReadonlyArray<Pick<PrecopyRun, 'sourceCpuMs' | 'destinationCpuMs' | 'endToEndMs'>>, sizeBytes: number, names = ['source', 'destination']): string {
  const source = medianOrNull(runs.map((r) => r.sourceCpuMs));
  const destination = medianOrNull(runs.map((r) => r.destinationCpuMs));
  if (source === null || destination === null) return '';
  const perGiB = (ms: number): string => `${((ms * GiB) / sizeBytes).toFixed(0)} ms`;
  // The share needs a run long against /proc's 10 ms ticks.
  const wallMs = median(runs.map((r) => r.endToEndMs));
  const busy = (ms: number): string => (wallMs < CPU_SHARE_MIN_WALL_MS ? '' : ` (${((100 * ms) / wallMs).toFixed(0)}% of a core)`);
  return `CPU per GiB: ${names[0]} ${perGiB(source)}${busy(source)}, ${names[1]} ${perGiB(destination)}${busy(destination)}`;
}

function precopyNote(b: PrecopyBaseline): string {
  const wire = b.medianTransferredBytes === null ? 'n/a' : `${(b.medianTransferredBytes / 1e9).toFixed(3)} GB`;
  const totalGbps = b.medianTotalTimeMs === null ? '' : ` (${(b.sizeBytes / (b.medianTotalTimeMs * 1e6)).toFixed(2)} GB/s by total-time)`;
  const cpu = cpuPerGiBNote(b.runs, b.sizeBytes);
  return `median of ${b.runs.length}; end to end ${fmtMs(b.medianEndToEndMs)}; QEMU total-time ${fmtMs(b.medianTotalTimeMs)}${totalGbps}, ` +
    `downtime ${fmtMs(b.medianDowntimeMs)}, mbps ${b.medianMbps === null ? 'n/a' : b.medianMbps.toFixed(0)}, transferred ${wire}${cpu === '' ? '' : `; ${cpu}`}`;
}

/** The table rows of a baselines result; failed modes go to `note`. */
export function qemuRows(baselines: QemuBaselines, note: (text: string) => void = () => undefined): BenchRow[] {
  const size = formatBytes(baselines.sizeBytes).replace('.00 ', ' ');
  const rows: BenchRow[] = [];
  // The 1-channel reference of the other rows: the preallocated destination when measured.
  const plain = baselines.modes['precopy-prealloc'] ?? baselines.modes.precopy;
  const plainVersus = plain?.kind === 'precopy' ? { name: 'QEMU 1 channel', value: plain.medianGbPerSec } : undefined;
  for (const mode of QEMU_MODES) {
    const b = baselines.modes[mode];
    if (b === undefined) continue;
    if (b.kind === 'failed') {
      note(`${b.label}: not measured: ${b.error}`);
      continue;
    }
    if (b.kind === 'postcopy-fault') {
      rows.push({
        group: 'qemu',
        name: `QEMU ${b.label}, ${size}`,
        value: b.medianFaultMs,
        unit: 'ms',
        samples: b.faultMs,
        versus: { name: 'resident page', value: b.medianResidentMs },
        note: `${b.faultMs.length} faults over ${b.runs.length} run(s): pmemsave on the destination of late pages (1 MiB apart from the end of RAM), ` +
          `each counted only when the source's postcopy-requests went up (${b.runs.reduce((n, r) => n + r.arrivedMs.length, 0)} read(s) found the page already there); ` +
          `precopy throttled to 32 MiB/s, migrate-start-postcopy after 300 ms, background pages unthrottled; ` +
          `resident = pmemsave of a page received in precopy (QMP + pmemsave cost), median ${fmtMs(b.medianResidentMs)}`,
        detail: {
          faultMs: b.faultMs,
          residentMs: b.residentMs,
          arrivedMs: b.runs.map((r) => r.arrivedMs),
          faultedPages: b.runs.map((r) => r.faultedPages),
          postcopyRequests: b.runs.map((r) => r.postcopyRequests),
          destinationStatus: b.runs.map((r) => r.destinationStatus),
          sourceRam: b.runs.map((r) => r.source.ram ?? null),
        },
      });
      continue;
    }
    if (mode === 'zero') {
      rows.push({
        group: 'qemu',
        name: `QEMU ${b.label}, ${size}`,
        value: b.medianEndToEndMs,
        unit: 'ms',
        samples: b.endToEndMs,
        note: precopyNote(b),
        detail: precopyFigures(b),
      });
      continue;
    }
    rows.push({
      group: 'qemu',
      name: `QEMU ${b.label}, ${size}`,
      value: b.medianGbPerSec,
      unit: 'GB/s',
      samples: b.gbPerSec,
      versus: mode === 'precopy-prealloc' || (mode === 'precopy' && baselines.modes['precopy-prealloc'] === undefined) ? undefined : plainVersus,
      note: precopyNote(b),
      detail: precopyFigures(b),
    });
  }
  return rows;
}

export interface QemuSizes {
  readonly sizeBytes: number;
  readonly runs: number;
}

export function makeQemuGroup(
  full: QemuSizes = { sizeBytes: 2 * GiB, runs: 3 },
  quick: QemuSizes = { sizeBytes: 256 * MiB, runs: 1 },
  extra: Pick<QemuBaselineOptions, 'availability' | 'modes'> = {},
): BenchGroup {
  return {
    name: 'qemu',
    description: 'QEMU 7.2 -> QEMU 7.2 over loopback TCP: precopy, zero RAM, multifd 2/4, TLS, postcopy fault latency',
    async run(ctx: BenchContext): Promise<BenchRow[]> {
      const sizes = ctx.quick ? quick : full;
      const baselines = await qemuBaselines({ ...sizes, ...extra, progress: ctx.progress, clockNs: ctx.clockNs });
      lastQemuBaselines = baselines;
      if (baselines.skipped !== null) throw new BenchSkipped(baselines.skipped);
      ctx.note?.(`${baselines.qemuVersion}; GB/s = RAM bytes / (migrate command -> destination completed event); source RAM a pattern file in /dev/shm (prealloc), destination memory-backend-ram (prealloc=on in the preallocated mode)`);
      return qemuRows(baselines, (text) => (ctx.note ?? ctx.progress)(text));
    },
  };
}
