// CPU per GiB of copying 4 KiB page payloads into guest RAM (a SharedArrayBuffer, as in real
// mode), the destination's per-page copy: `node scripts/perf/page-copy.mjs PRIMITIVE ORDER SHIFT`.
//   PRIMITIVE  set:  ram.set(payload, at)                 (V8: relaxed copies into the SAB)
//              copy: Buffer.copy into a Buffer over the SAB (Node 20 calls set)
//              fill: Buffer.fill(payload, at, at + 4096) on a Buffer over the SAB (memcpy)
//   ORDER      seq | rand: pages in order, or in a shuffled order
//   SHIFT      offset of the first payload in the 4 MiB source buffer; payloads follow every
//              4104 bytes, as [8-byte header, page] records do. 8 keeps them 8-byte aligned.
// 1 GiB of RAM, prefaulted; two passes, the figure is CPU (user + sys) per pass.
const primitive = process.argv[2] ?? 'set';
const order = process.argv[3] ?? 'seq';
const shift = Number(process.argv[4] ?? 8);
const PAGE = 4096, RECORD = PAGE + 8, RAM_BYTES = 1024 * 1024 * 1024;
const ram = new Uint8Array(new SharedArrayBuffer(RAM_BYTES));
const ramBuf = Buffer.from(ram.buffer);
for (let at = 0; at < RAM_BYTES; at += PAGE) ram[at] = 0;
const source = Buffer.alloc(4 * 1024 * 1024);
for (let i = 0; i < source.length; i++) source[i] = (i * 7) & 0xff;
const pages = RAM_BYTES / PAGE;
const perBuffer = Math.floor((source.length - shift) / RECORD);
const index = new Uint32Array(pages).map((_, i) => i);
if (order === 'rand') {
  for (let i = pages - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [index[i], index[j]] = [index[j], index[i]];
  }
}
const started = process.cpuUsage();
for (let pass = 0; pass < 2; pass++) {
  for (let p = 0; p < pages; ) {
    for (let k = 0; k < perBuffer && p < pages; k++, p++) {
      const from = shift + k * RECORD;
      const at = index[p] * PAGE;
      const payload = source.subarray(from, from + PAGE);
      if (primitive === 'set') ram.set(payload, at);
      else if (primitive === 'copy') source.copy(ramBuf, at, from, from + PAGE);
      else if (primitive === 'fill') ramBuf.fill(payload, at, at + PAGE);
      else throw new Error(`unknown primitive ${primitive}`);
    }
  }
}
const used = process.cpuUsage(started);
console.log(primitive, order, `shift ${shift}`, `${Math.round((used.user + used.system) / 1000 / 2)} ms CPU per GiB`);
