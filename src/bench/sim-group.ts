/**
 * The `sim` benchmark group: the simulator at scale. scenarios/huge-1t.yaml (compact backing,
 * precopy then postcopy requested 1 s in, a 64 MiB hot set) with guest.memory set to 64 GiB,
 * 256 GiB and 1 TiB (--quick: 1, 4 and 16 GiB). Each size runs in its own child process
 * (sim-child.ts) so that its peak RSS (getrusage maxrss) is the run's alone. Rows: wall time
 * per size (goal for 1 TiB: < 10 s), peak RSS (goal for 1 TiB: < 4 GiB), wall time per GiB
 * (linearity: the largest size against the smallest) and bookkeeping bits per page.
 *
 * Bits per page beyond contents = (live ArrayBuffer bytes at the end of the run, after a full
 * GC, − the two compact stores' 32-bit version arrays) × 8 / pages: the engines' bitmaps plus
 * the simulator's audit bitmaps and guest structures. The engines' own bookkeeping (dirty log,
 * migration bitmap, received map; goal ≤ 4 bits) is its own row, from memory/measure.ts.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GiB } from '../lib/units.ts';
import { measureBookkeeping } from '../memory/measure.ts';
import type { BenchContext, BenchGroup } from './registry.ts';
import type { BenchRow } from './table.ts';

const CHILD = fileURLToPath(new URL('./sim-child.ts', import.meta.url));
const SCENARIO = fileURLToPath(new URL('../../scenarios/huge-1t.yaml', import.meta.url));
const PAGE = 4096;

interface ChildResult {
  readonly ok: boolean;
  readonly status: string;
  readonly wallMs: number;
  readonly maxRssBytes: number;
  readonly arrayBufferBytes: number;
  readonly liveArrayBufferBytes: number;
}

function runChild(sizeGiB: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', '--import', 'tsx', CHILD, SCENARIO, `guest.memory=${sizeGiB}G`], { maxBuffer: 1 << 20, timeout: 600_000 }, (error, stdout, stderr) => {
      if (error !== null) return reject(new Error(`sim child (${sizeGiB} GiB) failed: ${error.message}\n${stderr}`));
      const line = stdout.trim().split('\n').pop() ?? '';
      resolve(JSON.parse(line) as ChildResult);
    });
  });
}

function label(sizeGiB: number): string {
  return sizeGiB >= 1024 ? `${sizeGiB / 1024} TiB` : `${sizeGiB} GiB`;
}

export function makeSimGroup(fullSizesGiB: readonly number[] = [64, 256, 1024], quickSizesGiB: readonly number[] = [1, 4, 16]): BenchGroup {
  return {
    name: 'sim',
    description: 'simulator at scale: huge-1t.yaml at 64 GiB, 256 GiB, 1 TiB (precopy + postcopy, compact): wall time, peak RSS, bits per page',
    async run(ctx: BenchContext): Promise<BenchRow[]> {
      const sizes = ctx.quick ? quickSizesGiB : fullSizesGiB;
      const largest = sizes[sizes.length - 1];
      const rows: BenchRow[] = [];
      const perGiB: number[] = [];
      for (const size of sizes) {
        ctx.progress(`sim: huge-1t.yaml with guest.memory=${size}G, in a child process`);
        const r = await runChild(size);
        const pages = (size * GiB) / PAGE;
        const wallS = r.wallMs / 1000;
        perGiB.push(r.wallMs / size);
        const isLargest = size === largest && !ctx.quick;
        rows.push({
          group: 'sim',
          name: `${label(size)} guest, wall time (precopy + postcopy)`,
          value: wallS,
          unit: 's',
          samples: [wallS],
          goal: isLargest ? { value: 10, better: 'lower', text: '< 10 s' } : undefined,
          note: `result ${r.ok ? 'ok' : 'NOT ok'} (${r.status}); one run in a child process`,
        });
        rows.push({
          group: 'sim',
          name: `${label(size)} guest, peak RSS`,
          value: r.maxRssBytes / GiB,
          unit: 'GiB',
          samples: [r.maxRssBytes / GiB],
          goal: isLargest ? { value: 4, better: 'lower', text: '< 4 GiB' } : undefined,
        });
        const bitsOf = (bytes: number): number => ((bytes - 2 * 4 * pages) * 8) / pages;
        rows.push({
          group: 'sim',
          name: `${label(size)} guest, typed-array bits per page beyond contents, live`,
          value: bitsOf(r.liveArrayBufferBytes),
          unit: 'bits',
          samples: [bitsOf(r.liveArrayBufferBytes)],
          note: `ArrayBuffer bytes the finished world still holds (after a full GC; ${bitsOf(r.arrayBufferBytes).toFixed(2)} before it) minus the two compact stores' 32-bit version arrays, per page: the engines' bitmaps plus the simulator's audit bitmaps and guest structures`,
        });
      }
      const engines = measureBookkeeping({ pageCount: (sizes[0] * GiB) / PAGE });
      const engineBits = (engines.dirtyLogBytesPerPage + engines.migrationBitmapBytesPerPage + engines.receivedMapBytesPerPage) * 8;
      rows.push({
        group: 'sim',
        name: 'engines\' bookkeeping bits per page (dirty log + migration bitmap + received map)',
        value: engineBits,
        unit: 'bits',
        samples: [engineBits],
        goal: { value: 4, better: 'lower', text: '<= 4' },
        note: 'memory/measure.ts measureBookkeeping: the bytes each structure allocates per page; the track hint policy adds 2 more bitmaps (sentOnce, hintedNeverSent)',
      });
      rows.push({
        group: 'sim',
        name: `wall time per GiB, ${label(largest)} (linearity)`,
        value: perGiB[perGiB.length - 1],
        unit: 'ms/GiB',
        samples: perGiB,
        versus: { name: `${label(sizes[0])}`, value: perGiB[0] },
        note: 'ratio near 1x = cost linear in guest size',
      });
      return rows;
    },
  };
}
