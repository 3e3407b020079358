// The destination's decode + placement cost without sockets: a precopy stream of SIZE_MIB of
// non-zero pattern RAM, encoded in memory, is fed to a DestEngine as real mode reads it (1 MiB
// reads copied into one reused buffer), into prefaulted shared RAM. Prints the CPU time
// (process.cpuUsage, user + system) of the feed, of the same copies alone, and their
// difference per GiB. `node --import tsx scripts/perf/dest-load.ts [SIZE_MIB] [RUNS] [set|native]`:
// `native` gives the engine the real VM's page copy (DestRam.copyPageIn, host/native-copy.ts),
// `set` (the default) leaves it the TypedArray set.
import { DestEngine } from '../../src/core/dest/dest-engine.ts';
import { BytesBacking } from '../../src/memory/bytes-backing.ts';
import { RamBlockList } from '../../src/memory/ram-block.ts';
import { ReceivedMap } from '../../src/memory/received-map.ts';
import { nativePageCopier } from '../../src/host/native-copy.ts';
import { RecordingHooks, patternBytes, precopyStream } from '../../src/core/dest/dest.test-util.ts';

const sizeBytes = Number(process.argv[2] ?? 512) * 1024 * 1024;
const runs = Number(process.argv[3] ?? 3);
const native = process.argv[4] === 'native';
const READ_BYTES = 1024 * 1024;
const GiB = 1024 ** 3;

const stream = precopyStream({ blocks: [{ name: 'mem', data: patternBytes(sizeBytes / 4096) }] });
const buffer = new Uint8Array(READ_BYTES);
const cpuMs = (since: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
};
const feed = (consume: (chunk: Uint8Array) => void): number => {
  const start = process.cpuUsage();
  for (let at = 0; at < stream.length; at += READ_BYTES) {
    const n = Math.min(READ_BYTES, stream.length - at);
    buffer.set(stream.subarray(at, at + n));
    consume(buffer.subarray(0, n));
  }
  return cpuMs(start);
};
for (let run = 0; run < runs; run++) {
  const store = new BytesBacking(sizeBytes, { shared: true });
  for (let w = 0; w < store.words.length; w += 1024) store.words[w] = 0;
  const engine = new DestEngine({
    ram: {
      blocks: RamBlockList.single('mem', sizeBytes),
      store,
      received: new ReceivedMap(store.pageCount),
      ...(native ? { copyPageIn: nativePageCopier(store.bytes) } : {}),
    },
    hooks: new RecordingHooks(),
    vcpuCount: 1,
  });
  const copyMs = feed(() => undefined);
  const totalMs = feed((chunk) => engine.onBytes('main', chunk, 0));
  if (engine.status !== 'completed') throw new Error(`load ended ${engine.status}: ${engine.lastError?.message}`);
  const perGiB = (ms: number): string => ((ms * GiB) / sizeBytes).toFixed(0);
  console.log(`feed ${perGiB(totalMs)} ms/GiB, copies alone ${perGiB(copyMs)} ms/GiB, decode + placement ${perGiB(totalMs - copyMs)} ms/GiB`);
}
