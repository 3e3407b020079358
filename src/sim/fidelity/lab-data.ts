/**
 * The guest lab's measurements (testdata/guest-lab/*.jsonl, written by guest-lab's
 * run-matrix.py or by `npm run lab`) as lab cases: one case per (guest size, workload,
 * max-bandwidth, free-page-hint, postcopy-ram, init_on_alloc), with the medians of its runs,
 * as run-matrix.py's table prints them.
 *
 * A row is one migration of a real Debian 6.1 guest under QEMU 7.2 TCG over loopback TCP:
 * boot, workload, `migrate` with the given capabilities and max-bandwidth, query-migrate until
 * completed. Only the members used here are typed; the rest is ignored.
 *
 * Pure: the caller reads the files.
 */
import type { QemuDestinationLoad } from '../../format/qemu-trace.ts';

/** One run as the lab wrote it (the members this module reads). */
export interface LabRow {
  readonly mem_mib: number;
  readonly wl: string;
  readonly hint: boolean;
  readonly bw: string;
  readonly pc: boolean;
  readonly rep: number;
  readonly append?: string;
  readonly append_extra?: string;
  readonly status: string;
  readonly total_time_ms?: number | null;
  readonly downtime_ms?: number | null;
  readonly transferred?: number | null;
  readonly total?: number | null;
  readonly duplicate?: number | null;
  readonly normal?: number | null;
  readonly dirty_sync_count?: number | null;
  readonly downtime_bytes?: number | null;
  readonly memtotal_kb?: number | null;
  readonly src_memfree_before_kb?: number | null;
  readonly src_memfree_min_kb?: number | null;
  readonly wl_lines?: readonly string[];
  readonly params?: { readonly 'max-bandwidth'?: number; readonly 'downtime-limit'?: number };
}

/** What a lab case is: the knobs run-matrix.py turns. */
export interface LabCaseKey {
  readonly memMib: number;
  readonly workload: 'idle' | 'alloc';
  /** run-matrix.py's bandwidth name: '1g' or '128m'. */
  readonly bw: string;
  readonly hint: boolean;
  readonly postcopyRam: boolean;
  /** Debian's default is 1; the lab's third suite boots with init_on_alloc=0. */
  readonly initOnAlloc: boolean;
}

/** The medians of a case's completed runs. */
export interface LabMedians {
  readonly totalTimeMs: number;
  readonly downtimeMs: number;
  readonly transferredBytes: number;
  readonly normalPages: number;
  readonly duplicatePages: number;
  readonly dirtySyncCount: number;
  readonly memfreeBeforeKb: number;
  readonly memfreeMinKb: number;
}

/** One lab case: its key, its runs, their medians. */
export interface LabCase extends LabCaseKey {
  /** File-name friendly id, e.g. `m1024-alloc-128m-hint-on`, `...-pc`, `...-ioa0`. */
  readonly id: string;
  readonly runs: readonly LabRow[];
  /** Runs that completed (the medians are over these). */
  readonly completed: number;
  readonly medians: LabMedians;
  /** max-bandwidth and downtime-limit as QEMU reported them (bytes/s, ms). */
  readonly maxBandwidthBytesPerSec: number;
  readonly downtimeLimitMs: number;
  /** MemTotal of the guest, kB. */
  readonly memtotalKb: number;
  /** alloc: MiB the workload filled (its `GL wl alloc-filled mib=N` line); 0 for idle. */
  readonly allocFilledMib: number;
}

/** The lab's committed results, relative to the repository root, in the order they were measured. */
export const LAB_DATA_DIR = 'testdata/guest-lab';
export const LAB_DATA_FILES: readonly string[] = ['main.jsonl', 'postcopy.jsonl', 'no-init-on-alloc.jsonl'];
/** Where the lab scenarios live, relative to the repository root. */
export const LAB_SCENARIO_DIR = 'scenarios/lab';

/**
 * The host suites: the same 32 cases measured again with `npm run lab` (3 runs each) on another
 * machine of the lab's kind, whose kernel hands free memory back to its hypervisor (free page
 * reporting). The cold-host suite took the host as it was, so every destination QEMU's RAM and
 * every page the source's guest zeroed for the first time was first touched cold. The warm-host
 * suite ran with `--host-memory warm` (the destination's RAM lands on memory freed a moment
 * before); its file starts with the five-case A/B measured right after the cold suite. Their
 * scenarios take that machine's calibration, warm or cold (src/sim/calibration-host.ts), and the
 * guest's layout from the warm runs.
 */
export const LAB_COLD_HOST_FILES: readonly string[] = ['cold-host.jsonl'];
export const LAB_COLD_HOST_SCENARIO_DIR = 'scenarios/lab/cold-host';
/** The host facts of the host suites: the first-touch probe, the guest's boot speed. */
export const LAB_COLD_HOST_FACTS = 'cold-host.host.json';
export const LAB_WARM_HOST_FILES: readonly string[] = ['warm-host.jsonl'];
export const LAB_WARM_HOST_SCENARIO_DIR = 'scenarios/lab/warm-host';

/** run-matrix.py's bandwidth names. */
export const LAB_BANDWIDTHS: Readonly<Record<string, number>> = {
  '1g': 1 << 30,
  '512m': 512 << 20,
  '256m': 256 << 20,
  '128m': 128 << 20,
  '64m': 64 << 20,
  '32m': 32 << 20,
};

/** Parses JSON lines (blank lines skipped). */
export function parseLabJsonl(text: string): LabRow[] {
  return parseJsonl<LabRow>(text);
}

/** The records of a JSON-lines file (blank lines skipped), typed as the caller knows them. */
export function parseJsonl<T>(text: string): T[] {
  return text.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as T);
}

/** The median as run-matrix.py computes it (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const xs = [...values].sort((a, b) => a - b);
  if (xs.length === 0) return Number.NaN;
  const mid = xs.length >> 1;
  return xs.length % 2 === 1 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}

/** Whether a row's guest ran with init_on_alloc=1 (no init_on_alloc=0 on its command line). */
export function initOnAllocOf(row: LabRow): boolean {
  return !/\binit_on_alloc=0\b/.test(`${row.append ?? ''} ${row.append_extra ?? ''}`);
}

/** The case key of a row. */
export function keyOf(row: LabRow): LabCaseKey {
  return {
    memMib: row.mem_mib,
    workload: row.wl === 'alloc' ? 'alloc' : 'idle',
    bw: row.bw,
    hint: row.hint,
    postcopyRam: row.pc,
    initOnAlloc: initOnAllocOf(row),
  };
}

/** The file-name friendly id of a case key. */
export function caseId(key: LabCaseKey): string {
  return `m${key.memMib}-${key.workload}-${key.bw}-hint-${key.hint ? 'on' : 'off'}${key.postcopyRam ? '-pc' : ''}${key.initOnAlloc ? '' : '-ioa0'}`;
}

/** MiB the alloc workload reports it filled (`GL wl alloc-filled ... mib=N`), or 0. */
export function allocFilledMib(row: LabRow): number {
  for (const line of row.wl_lines ?? []) {
    const m = /alloc-filled .*\bmib=(\d+)/.exec(line);
    if (m !== null) return Number(m[1]);
  }
  return 0;
}

function num(value: number | null | undefined): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function medianOf(rows: readonly LabRow[], pick: (row: LabRow) => number | null | undefined): number {
  return median(rows.map((r) => num(pick(r))).filter((x): x is number => x !== null));
}

/** Groups rows into cases, in a stable order (size, workload, bandwidth down, pc, ioa, hint on first). */
export function labCases(rows: readonly LabRow[]): LabCase[] {
  const groups = new Map<string, LabRow[]>();
  for (const row of rows) {
    const id = caseId(keyOf(row));
    const list = groups.get(id);
    if (list === undefined) groups.set(id, [row]);
    else list.push(row);
  }
  const cases: LabCase[] = [];
  for (const [id, runs] of groups) {
    const key = keyOf(runs[0]);
    const ok = runs.filter((r) => r.status === 'completed');
    cases.push({
      ...key,
      id,
      runs,
      completed: ok.length,
      medians: {
        totalTimeMs: medianOf(ok, (r) => r.total_time_ms),
        downtimeMs: medianOf(ok, (r) => r.downtime_ms),
        transferredBytes: medianOf(ok, (r) => r.transferred),
        normalPages: medianOf(ok, (r) => r.normal),
        duplicatePages: medianOf(ok, (r) => r.duplicate),
        dirtySyncCount: medianOf(ok, (r) => r.dirty_sync_count),
        memfreeBeforeKb: medianOf(runs, (r) => r.src_memfree_before_kb),
        memfreeMinKb: medianOf(ok, (r) => r.src_memfree_min_kb),
      },
      maxBandwidthBytesPerSec: runs[0].params?.['max-bandwidth'] ?? LAB_BANDWIDTHS[key.bw] ?? Number.NaN,
      downtimeLimitMs: runs[0].params?.['downtime-limit'] ?? 300,
      memtotalKb: medianOf(runs, (r) => r.memtotal_kb),
      allocFilledMib: median(runs.map(allocFilledMib).filter((m) => m > 0)) || 0,
    });
  }
  return cases.sort(compareCases);
}

function compareCases(a: LabCase, b: LabCase): number {
  return a.memMib - b.memMib
    || Number(b.initOnAlloc) - Number(a.initOnAlloc)
    || a.workload.localeCompare(b.workload)
    || (LAB_BANDWIDTHS[b.bw] ?? 0) - (LAB_BANDWIDTHS[a.bw] ?? 0)
    || Number(a.postcopyRam) - Number(b.postcopyRam)
    || Number(b.hint) - Number(a.hint);
}

/**
 * The guest's boot data, pages: what a hint-off migration of the idle guest of this size
 * sends as normal pages (the kernel, its data, the initramfs' page cache). Null when the
 * rows have no such run.
 */
export function kernelDataPages(rows: readonly LabRow[], memMib: number): number | null {
  const idle = rows.filter((r) => r.mem_mib === memMib && r.wl === 'idle' && !r.hint && r.status === 'completed');
  return idle.length === 0 ? null : medianOf(idle, (r) => r.normal);
}

/**
 * Free memory the hint driver cannot take, kB: the least MemFree the guest showed while it
 * hinted with all the time it needed (alloc guest, 128 MiB/s, hinting on: every 4 MiB block was
 * taken). Null when the rows have no such run.
 */
export function unhintableFreeKb(rows: readonly LabRow[], memMib: number): number | null {
  const runs = rows.filter((r) => r.mem_mib === memMib && r.wl === 'alloc' && r.hint && !r.pc && r.bw === '128m' && r.status === 'completed' && initOnAllocOf(r));
  return runs.length === 0 ? null : medianOf(runs, (r) => r.src_memfree_min_kb);
}

/**
 * Alloc data the hint driver left behind without init_on_alloc, kB: in the init_on_alloc=0
 * alloc guest at 128 MiB/s with hinting on, the normal pages sent beyond those of the idle guest
 * of the same size and suite under the same migration (medians). Without init_on_alloc the
 * driver had taken every 4 MiB block by the first sample (0.26 s), so what is left is the alloc
 * data in memory it cannot take. That memory also held zero pages (the same runs sent about
 * 9,000 duplicate pages), so the least MemFree (unhintableFreeKb) overstates the data in it.
 * Null unless the rows have both kinds of run (init_on_alloc=0 only: with init_on_alloc=1 the
 * driver's zeroing and its slower pace mix lost races into the same difference; the
 * init_on_alloc=1 alloc guest's scenario takes this figure, the same workload's fragments).
 */
export function unhintableAllocDataKb(rows: readonly LabRow[], memMib: number): number | null {
  const runs = (wl: string) => rows.filter((r) => r.mem_mib === memMib && r.wl === wl && r.hint && !r.pc && r.bw === '128m' && r.status === 'completed' && !initOnAllocOf(r));
  const alloc = runs('alloc');
  const idle = runs('idle');
  if (alloc.length === 0 || idle.length === 0) return null;
  return Math.max(0, medianOf(alloc, (r) => r.normal) - medianOf(idle, (r) => r.normal)) * 4;
}

/**
 * Data at the top of a guest's RAM, bytes: what a hint-off idle migration at 128 MiB/s of a
 * guest of this size left for the downtime (its `downtime-bytes`, median). Under the rate limit
 * the convergence check (threshold 134 MB/s × 300 ms = 40 MB) comes while the scan is in the
 * zero pages below that region, so the whole region is sent in the downtime. Null when the rows
 * have no such run.
 */
export function topDataBytes(rows: readonly LabRow[], memMib: number): number | null {
  const idle = rows.filter((r) => r.mem_mib === memMib && r.wl === 'idle' && !r.hint && r.bw === '128m' && r.status === 'completed');
  return idle.length === 0 ? null : medianOf(idle, (r) => r.downtime_bytes);
}

/** A source RAM dump's zero-page layout, as `npm run lab -- --hint-stale` records it. */
export interface ZeroLayoutRecord {
  readonly memMib: number;
  /** Runs of 32+ zero pages, "0x<guest physical address>+<pages>" (harness/lab/ramdiff.ts). */
  readonly sourceZeroRuns: readonly string[];
}

/** Zero pages in `runs` below page `endPage`. */
export function zeroPagesBelow(runs: readonly string[], endPage: number): number {
  let pages = 0;
  for (const run of runs) {
    const m = /^0x([0-9a-f]+)\+(\d+)$/i.exec(run);
    if (m === null) throw new Error(`zero run ${JSON.stringify(run)}: expected 0x<address>+<pages>`);
    const start = Number.parseInt(m[1], 16) / 4096;
    pages += Math.max(0, Math.min(start + Number(m[2]), endPage) - start);
  }
  return pages;
}

/** The low region the guest's boot data lies in, pages: 48 MiB (ZONE_DMA and the boot allocations above it). */
export const LOW_ZERO_END_PAGE = (48 * 1024 * 1024) / 4096;

/**
 * The zero pages no allocation reaches among the low boot data (ZONE_DMA's free memory, the free
 * rest of unmovable pageblocks): per guest size, the median over its dumps of the zero pages in
 * runs of 32+ below 48 MiB; then the mean of the sizes, rounded. Null without records. The lab
 * scenarios do not place them yet (docs/fidelity.md, fourteenth round: guest.fragmented-zero).
 */
export function lowZeroPages(records: readonly ZeroLayoutRecord[]): number | null {
  const sizes = [...new Set(records.map((r) => r.memMib))].sort((a, b) => a - b);
  if (sizes.length === 0) return null;
  const perSize = sizes.map((mem) => median(records.filter((r) => r.memMib === mem).map((r) => zeroPagesBelow(r.sourceZeroRuns, LOW_ZERO_END_PAGE))));
  return Math.round(perSize.reduce((a, b) => a + b, 0) / perSize.length);
}

/** The traced runs of the destination's load (`npm run lab -- --trace-migration`; host suites' machine, warm). */
export const LAB_DESTINATION_TRACE_FILE = 'trace-destination.jsonl';

/** A traced run's destination load, as lab-run.ts records it (qemu-trace.ts destinationLoadOf). */
export interface DestinationLoadRecord {
  readonly pc: boolean;
  readonly qemu_dst_load: QemuDestinationLoad | null;
}

/** The virtio-balloon section's load time of a run, ms (0 when it was under 1 ms). */
export function balloonLoadMs(record: DestinationLoadRecord): number {
  return record.qemu_dst_load?.slowSections.find(([name]) => name.endsWith('/virtio-balloon'))?.[1] ?? 0;
}

/**
 * The destination's extra device load after a postcopy advise (calibration-host.ts
 * HOST_ADVISED_DEVICE_LOAD_NS), ms: the median virtio-balloon section of the postcopy-ram runs
 * less that of the others (under 1 ms each, so 0). Null without both kinds of runs.
 */
export function advisedDeviceLoadMs(records: readonly DestinationLoadRecord[]): number | null {
  const loaded = records.filter((r) => r.qemu_dst_load !== null);
  const advised = loaded.filter((r) => r.pc).map(balloonLoadMs);
  const plain = loaded.filter((r) => !r.pc).map(balloonLoadMs);
  if (advised.length === 0 || plain.length === 0) return null;
  return Math.round((median(advised) - median(plain)) * 10) / 10;
}
