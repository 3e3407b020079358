/**
 * Measurements of the memory layer, for the benchmark command and the memory tests: how long
 * a dirty-log sync takes on a big guest, how many pages per second a guest can write with
 * dirty logging on, and how many bytes of bookkeeping each page costs. Pure: the caller passes
 * a monotonic clock (pure layers may not read one), and nothing here asserts on time.
 */
import { Bitmap } from '../lib/bitmap.ts';
import { Prng } from '../lib/prng.ts';
import { BytesBacking } from './bytes-backing.ts';
import { CompactBacking } from './compact-backing.ts';
import { DirtyLog } from './dirty-log.ts';
import { DirtyTrackingMemory } from './dirty-tracking-memory.ts';
import { MigrationBitmap } from './migration-bitmap.ts';
import { PAGE_SIZE_BYTES } from './page-content.ts';
import { ReceivedMap } from './received-map.ts';

/** A monotonic clock reading in nanoseconds. */
export type ClockNs = () => number;

/** Pages of a 64 GiB guest. */
export const PAGES_64_GIB = 16_777_216;
/** Pages of a 1 TiB guest. */
export const PAGES_1_TIB = 268_435_456;

export interface DirtySyncOptions {
  /** Guest pages; 16,777,216 (64 GiB) by default. */
  readonly pageCount?: number;
  /** Fraction of pages dirtied before each sync; 0.01 by default. */
  readonly dirtyFraction?: number;
  /** Timed syncs; 5 by default. */
  readonly runs?: number;
  /** Seed of the dirty page choice. */
  readonly seed?: number;
}

export interface DirtySyncFigures {
  /** Guest pages. */
  readonly pageCount: number;
  /** Distinct pages dirty before each sync. */
  readonly dirtyPageCount: number;
  /** Timed syncs. */
  readonly runs: number;
  /** Fastest sync. */
  readonly syncTimeNsMin: number;
  /** Median sync. */
  readonly syncTimeNsMedian: number;
  /** Median sync of a log with no page dirty (the cost of the scan alone). */
  readonly emptySyncTimeNsMedian: number;
}

function median(values: number[]): number {
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Times DirtyLog.sync of a guest with `dirtyFraction` of its pages dirty. */
export function measureDirtySync(clockNs: ClockNs, options: DirtySyncOptions = {}): DirtySyncFigures {
  const pageCount = options.pageCount ?? PAGES_64_GIB;
  const runs = options.runs ?? 5;
  const prng = new Prng(options.seed ?? 1);
  const picks = new Uint32Array(Math.round(pageCount * (options.dirtyFraction ?? 0.01)));
  for (let i = 0; i < picks.length; i++) picks[i] = prng.int(0, pageCount - 1);
  const log = new DirtyLog(pageCount);
  const dest = new Bitmap(pageCount);
  const times: number[] = [];
  const emptyTimes: number[] = [];
  let dirtyPageCount = 0;
  for (let run = 0; run < runs; run++) {
    dest.clearAll();
    for (let i = 0; i < picks.length; i++) log.markDirty(picks[i]);
    dirtyPageCount = log.count();
    const start = clockNs();
    const added = log.sync(dest);
    times.push(clockNs() - start);
    if (added !== dirtyPageCount) throw new Error(`sync added ${added} pages, ${dirtyPageCount} were dirty`);
    const emptyStart = clockNs();
    log.sync(dest);
    emptyTimes.push(clockNs() - emptyStart);
  }
  return {
    pageCount,
    dirtyPageCount,
    runs,
    syncTimeNsMin: Math.min(...times),
    syncTimeNsMedian: median(times),
    emptySyncTimeNsMedian: median(emptyTimes),
  };
}

export interface WriteThroughputOptions {
  /** Guest RAM; 64 MiB by default. */
  readonly sizeBytes?: number;
  /** Timed passes over every page; 8 by default (one untimed warm-up pass runs first). */
  readonly passes?: number;
}

export interface WriteThroughputFigures {
  /** Guest pages. */
  readonly pageCount: number;
  /** Page writes timed (one byte per page per pass). */
  readonly pagesWritten: number;
  /** Time of the timed passes with dirty logging on. */
  readonly elapsedNs: number;
  /** Page writes per second with dirty logging on. */
  readonly pagesPerSecond: number;
  /** Page writes per second straight to the backing, for comparison. */
  readonly untrackedPagesPerSecond: number;
}

/** One pass of one-byte writes, one per page, at a page offset that moves each pass. */
function writePass(memory: { writeU8(gpa: number, value: number): void }, pageCount: number, pass: number): void {
  const offset = (pass * 67) % PAGE_SIZE_BYTES;
  for (let page = 0; page < pageCount; page++) memory.writeU8(page * PAGE_SIZE_BYTES + offset, pass);
}

/** Times a single thread writing one byte per page through DirtyTrackingMemory. */
export function measureDirtyWriteThroughput(clockNs: ClockNs, options: WriteThroughputOptions = {}): WriteThroughputFigures {
  const sizeBytes = options.sizeBytes ?? 64 * 1024 * 1024;
  const passes = options.passes ?? 8;
  const backing = new BytesBacking(sizeBytes, { shared: true });
  const pageCount = backing.pageCount;
  const memory = new DirtyTrackingMemory(backing, new DirtyLog(pageCount));
  const dest = new Bitmap(pageCount);
  writePass(memory, pageCount, 0);
  writePass(backing, pageCount, 0);
  let elapsedNs = 0;
  for (let pass = 1; pass <= passes; pass++) {
    // Each pass starts from a clean log, as the guest does after a sync.
    memory.log.sync(dest);
    const start = clockNs();
    writePass(memory, pageCount, pass);
    elapsedNs += clockNs() - start;
  }
  const untrackedStart = clockNs();
  for (let pass = 1; pass <= passes; pass++) writePass(backing, pageCount, pass);
  const untrackedNs = clockNs() - untrackedStart;
  const pagesWritten = pageCount * passes;
  return {
    pageCount,
    pagesWritten,
    elapsedNs,
    pagesPerSecond: (pagesWritten * 1e9) / Math.max(1, elapsedNs),
    untrackedPagesPerSecond: (pagesWritten * 1e9) / Math.max(1, untrackedNs),
  };
}

export interface BookkeepingOptions {
  /** Guest pages; 16,777,216 (64 GiB) by default. */
  readonly pageCount?: number;
  /** Version width of the compact backing; 32 by default. */
  readonly versionBits?: 16 | 32;
}

export interface BookkeepingFigures {
  /** Guest pages measured. */
  readonly pageCount: number;
  /** Version width of the compact backing. */
  readonly versionBits: 16 | 32;
  /** Bytes per page of the compact backing (content representation). */
  readonly compactBytesPerPage: number;
  /** Bytes per page of the dirty log. */
  readonly dirtyLogBytesPerPage: number;
  /** Bytes per page of the migration bitmap. */
  readonly migrationBitmapBytesPerPage: number;
  /** Bytes per page of the received map. */
  readonly receivedMapBytesPerPage: number;
  /** Bytes per page of all four. */
  readonly totalBytesPerPage: number;
  /** All four for a 1 TiB guest (268,435,456 pages), in bytes. */
  readonly projected1TiBBytes: number;
}

/** Builds a compact guest with its log and maps and reports their bytes per page. */
export function measureBookkeeping(options: BookkeepingOptions = {}): BookkeepingFigures {
  const pageCount = options.pageCount ?? PAGES_64_GIB;
  const versionBits = options.versionBits ?? 32;
  const per = (bytes: number): number => bytes / pageCount;
  const compact = per(new CompactBacking(pageCount, { versionBits }).bookkeepingBytes());
  const dirtyLog = per(new DirtyLog(pageCount).bookkeepingBytes());
  const migrationBitmap = per(new MigrationBitmap(pageCount).bookkeepingBytes());
  const receivedMap = per(new ReceivedMap(pageCount).bookkeepingBytes());
  const total = compact + dirtyLog + migrationBitmap + receivedMap;
  return {
    pageCount,
    versionBits,
    compactBytesPerPage: compact,
    dirtyLogBytesPerPage: dirtyLog,
    migrationBitmapBytesPerPage: migrationBitmap,
    receivedMapBytesPerPage: receivedMap,
    totalBytesPerPage: total,
    projected1TiBBytes: Math.round(total * PAGES_1_TIB),
  };
}

/** All memory-layer figures. */
export interface MemoryFigures {
  readonly dirtySync: DirtySyncFigures;
  readonly writeThroughput: WriteThroughputFigures;
  readonly bookkeeping: BookkeepingFigures;
}

/** Runs the three measurements with their defaults (64 GiB sync at 1%, 64 MiB writes). */
export function measureMemoryLayer(clockNs: ClockNs): MemoryFigures {
  return {
    dirtySync: measureDirtySync(clockNs),
    writeThroughput: measureDirtyWriteThroughput(clockNs),
    bookkeeping: measureBookkeeping(),
  };
}

/** The figures as report lines. */
export function formatMemoryFigures(figures: MemoryFigures): string[] {
  const { dirtySync: s, writeThroughput: w, bookkeeping: b } = figures;
  const ms = (ns: number): string => (ns / 1e6).toFixed(2);
  return [
    `dirty-log sync: ${s.pageCount} pages, ${s.dirtyPageCount} dirty: median ${ms(s.syncTimeNsMedian)} ms, min ${ms(s.syncTimeNsMin)} ms; empty log ${ms(s.emptySyncTimeNsMedian)} ms`,
    `guest writes with dirty logging: ${(w.pagesPerSecond / 1e6).toFixed(1)} M pages/s (untracked ${(w.untrackedPagesPerSecond / 1e6).toFixed(1)} M pages/s; ${w.pagesWritten} page writes over ${w.pageCount} pages)`,
    `bookkeeping per page (${b.versionBits}-bit versions): compact ${b.compactBytesPerPage} B + dirty log ${b.dirtyLogBytesPerPage} B + migration bitmap ${b.migrationBitmapBytesPerPage} B + received map ${b.receivedMapBytesPerPage.toFixed(6)} B = ${b.totalBytesPerPage.toFixed(6)} B; 1 TiB guest: ${(b.projected1TiBBytes / 2 ** 30).toFixed(3)} GiB`,
  ];
}
