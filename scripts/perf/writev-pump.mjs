// Sender CPU per GiB over loopback TCP for two ways of sending 1 GiB of RAM as PAGE records
// (8-byte header + 4 KiB page each), RAM in a SharedArrayBuffer as in real mode:
//   copy:    headers and pages copied into 1 MiB chunks, one write() per chunk (what livemig does)
//   writev:  no copy; the socket corked, write(header view) + write(page view) per page, uncork
//            every PAGES_PER_UNCORK pages (one writev syscall of up to 1024 iovecs)
// `node scripts/perf/writev-pump.mjs [copy|writev] [MIB]`. A child process receives and discards.
import { fork } from 'node:child_process';
import net from 'node:net';

if (process.argv[2] === 'sink') {
  const server = net.createServer((s) => s.on('data', () => {}).on('end', () => { process.send('done'); server.close(); }));
  server.listen(0, '127.0.0.1', () => process.send(server.address().port));
} else {
  const mode = process.argv[2] ?? 'copy';
  const mib = Number(process.argv[3] ?? 1024);
  const PAGE = 4096, PAGES_PER_UNCORK = 512, CHUNK = 1024 * 1024;
  const ram = new Uint8Array(new SharedArrayBuffer(mib * 1024 * 1024));
  const words = new Uint32Array(ram.buffer);
  for (let i = 0; i < words.length; i++) words[i] = (Math.imul(i, 0x9e3779b1) | 1) >>> 0;
  const ramBuf = Buffer.from(ram.buffer);
  const pages = ram.length / PAGE;
  const child = fork(new URL(import.meta.url).pathname, ['sink']);
  const port = await new Promise((r) => child.once('message', r));
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const drain = () => new Promise((r) => sock.once('drain', r));
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  if (mode === 'copy') {
    const pool = [];
    for (let p = 0; p < pages;) {
      const chunk = pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
      const view = new DataView(chunk.buffer, chunk.byteOffset, CHUNK);
      let pos = 0;
      for (; p < pages && pos + 8 + PAGE <= CHUNK; p++) {
        view.setUint32(pos, 0); view.setUint32(pos + 4, (p * PAGE) | 0x28);
        chunk.set(ram.subarray(p * PAGE, (p + 1) * PAGE), pos + 8);
        pos += 8 + PAGE;
      }
      const ok = sock.write(chunk.subarray(0, pos), () => pool.push(chunk));
      if (!ok) await drain();
    }
  } else {
    const headers = Buffer.allocUnsafeSlow(8 * pages);
    for (let p = 0; p < pages;) {
      sock.cork();
      const stop = Math.min(pages, p + PAGES_PER_UNCORK);
      for (; p < stop; p++) {
        headers.writeUInt32BE(0, p * 8); headers.writeUInt32BE(((p * PAGE) | 0x28) >>> 0, p * 8 + 4);
        sock.write(headers.subarray(p * 8, p * 8 + 8));
        sock.write(ramBuf.subarray(p * PAGE, (p + 1) * PAGE));
      }
      sock.uncork();
      if (sock.writableLength >= 4 * CHUNK) await drain();
    }
  }
  sock.end();
  await new Promise((r) => child.once('message', r));
  const c = process.cpuUsage(c0);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(mode, `${mib} MiB`, 'sender cpu ms per GiB', Math.round((c.user + c.system) / 1000 / (mib / 1024)), 'wall GB/s', (ram.length / ms / 1e6).toFixed(2));
}
