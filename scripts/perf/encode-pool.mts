// CPU ms per GiB of StreamEncoder.ramPages over pattern RAM (every page non-zero, as pair.ts's
// guest), with chunk buffers recycled through a ChunkPool as real mode does, for the checkout at
// ROOT: `node --import tsx scripts/perf/encode-pool.mts ROOT [MIB] [RUNS]`. Prints each run's CPU
// (user + sys of this process) scaled to 1 GiB; the medians are what to compare.
// LIVEMIG_ENCODE_VIEWS=1: encoder option pageViews (pages handed out as views, not copied).
// LIVEMIG_ENCODE_NOPOOL=1: the pool never gets a buffer back (every chunk freshly allocated).
const root = (await import('node:path')).resolve(process.argv[2] ?? '.');
const mib = Number(process.argv[3] ?? 1024);
const runs = Number(process.argv[4] ?? 5);
const { StreamEncoder } = await import(`${root}/src/format/stream-encoder.ts`);
const { ChunkPool } = await import(`${root}/src/format/chunk-pool.ts`);
const { installNativeZeroTest } = await import(`${root}/src/host/native-zero.ts`);
const { patternBytes } = await import(`${root}/src/harness/qemu-migrate.ts`);
installNativeZeroTest();
// Real mode's guest RAM is a SharedArrayBuffer (vCPU threads write it): copies out of it take
// V8's shared-memory path. LIVEMIG_ENCODE_PLAIN=1 measures a plain ArrayBuffer instead.
const pattern = patternBytes(0, mib * 1024 * 1024);
const ram = process.env.LIVEMIG_ENCODE_PLAIN === '1' ? pattern : new Uint8Array(new SharedArrayBuffer(pattern.length));
if (ram !== pattern) ram.set(pattern);
const out: number[] = [];
for (let k = 0; k < runs; k++) {
  let consumed = 0;
  const pool = new ChunkPool(() => (process.env.LIVEMIG_ENCODE_NOPOOL === '1' ? 0 : consumed));
  const e = new StreamEncoder({
    onChunk: (c: Uint8Array) => (consumed += c.length),
    chunkSizeBytes: 1024 * 1024,
    allocChunk: pool.alloc,
    pageViews: process.env.LIVEMIG_ENCODE_VIEWS === '1',
  });
  const c0 = process.cpuUsage();
  e.ramPages('pc.ram', ram);
  e.flush();
  const c = process.cpuUsage(c0);
  out.push(Math.round((c.user + c.system) / 1000 / (mib / 1024)));
}
const sorted = [...out].sort((a, b) => a - b);
console.log(root, 'encode cpu ms per GiB', out.join(' '), 'median', sorted[sorted.length >> 1]);
