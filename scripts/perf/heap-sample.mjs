// Where a process allocates, garbage included: a preload for the bench's VM processes,
// `LIVEMIG_BENCH_NODE_ARGS="--import ./scripts/perf/heap-sample.mjs" node --import tsx scripts/perf/postcopy-latency.ts processes 1 1`
// (a path relative to the repository root). V8's sampling heap profiler on the main thread, keeping
// objects the minor and major GCs collected; at exit it writes the 40 largest allocation sites
// (with three callers) to HEAP_SAMPLE_DIR (default the OS temp dir) as heap-PID.txt, the process's
// command line on the first line. Whole process life: module loading shows up too.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';

const SAMPLING_INTERVAL_BYTES = 8192;
const TOP_SITES = 40;

function siteName(frame) {
  return `${frame.functionName || '(anon)'} ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}`;
}

function topSites(head) {
  const bytesBySite = new Map();
  const walk = (node, callers) => {
    const name = siteName(node.callFrame);
    if (node.selfSize > 0) {
      const key = [name, ...callers.slice(-3).reverse()].join(' < ');
      bytesBySite.set(key, (bytesBySite.get(key) ?? 0) + node.selfSize);
    }
    for (const child of node.children) walk(child, [...callers, name]);
  };
  walk(head, []);
  return [...bytesBySite].sort((a, b) => b[1] - a[1]).slice(0, TOP_SITES);
}

if (isMainThread) {
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.startSampling', {
    samplingInterval: SAMPLING_INTERVAL_BYTES,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  let written = false;
  const write = () => {
    if (written) return;
    written = true;
    // A same-thread session answers synchronously, so this works inside 'exit'.
    session.post('HeapProfiler.stopSampling', (error, result) => {
      if (error) return;
      const rows = topSites(result.profile.head).map(([site, bytes]) => `${(bytes / 1048576).toFixed(2)} MiB  ${site}`);
      const file = join(process.env.HEAP_SAMPLE_DIR ?? tmpdir(), `heap-${process.pid}.txt`);
      writeFileSync(file, `${process.argv.join(' ')}\n${rows.join('\n')}\n`);
    });
  };
  process.on('exit', write);
  process.on('SIGTERM', () => {
    write();
    process.exit(0);
  });
}
