/**
 * A native page copy into guest RAM for the destination engine (DestRam.copyPageIn).
 *
 * Guest RAM is a SharedArrayBuffer. V8 copies into a typed array over one (`set`, and Node 20's
 * `Buffer.copy`, which calls `set`) with relaxed loads and stores: a word at a time when source
 * and target are both 8-byte aligned, a byte at a time otherwise. A page payload's offset in a
 * socket read depends on where the read began in the stream, so it is usually unaligned.
 * `Buffer.fill` with a typed array as the value is a memcpy in Node's C++ whatever the alignment.
 * Measured (one 4 KiB copy per page into 1 GiB of SharedArrayBuffer from a 4 MiB buffer, see
 * docs/performance.md "Session 3, last mile"): `set` 190 ms per GiB aligned, 310-340 unaligned;
 * `fill` 183-188 either way.
 */
import { PAGE_SIZE_BYTES } from '../memory/page-content.ts';

/** copyPageIn for `ram` (a bytes store's bytes): `ram.set(bytes, pageIndex * PAGE_SIZE_BYTES)` natively. */
export function nativePageCopier(ram: Uint8Array): (pageIndex: number, bytes: Uint8Array) => void {
  const target = Buffer.from(ram.buffer, ram.byteOffset, ram.byteLength);
  return (pageIndex, bytes) => {
    const at = pageIndex * PAGE_SIZE_BYTES;
    // fill repeats `bytes` over [at, at + length): one memcpy when the lengths are equal.
    if (bytes.length !== PAGE_SIZE_BYTES) throw new RangeError(`page copy of ${bytes.length} bytes, expected ${PAGE_SIZE_BYTES}`);
    target.fill(bytes, at, at + PAGE_SIZE_BYTES);
  };
}
