// CPU time (user + system) of StreamEncoder.ramPages over 256 MiB of non-zero RAM, six runs,
// for the checkout at ROOT: `node --import tsx scripts/perf/encode-cpu.mts ROOT`. Comparing two
// checkouts this way is steadier than the codec group's GB/s on a loaded machine.
const root = process.argv[2];
const { StreamEncoder } = await import(`${root}/src/format/stream-encoder.ts`);
const { installNativeZeroTest } = await import(`${root}/src/host/native-zero.ts`);
installNativeZeroTest();
const ram = new Uint8Array(256 * 1024 * 1024);
for (let i = 0; i < ram.length; i += 512) ram[i] = (i >> 9) | 1;
const out: number[] = [];
for (let k = 0; k < 6; k++) {
  const c0 = process.cpuUsage();
  const e = new StreamEncoder({ onChunk: () => undefined });
  e.ramPages('mem', ram);
  e.flush();
  const c = process.cpuUsage(c0);
  out.push(Math.round((c.user + c.system) / 1000));
}
console.log(root, 'cpu ms per 256 MiB', out.join(' '));
