// The guest lab's pure parts: the newc cpio writer (byte layout, padding, trailer, determinism),
// module dependency order from modinfo, and lab case ids. Acceptance criteria: headers as the
// kernel's initramfs unpacker reads them; dependencies before dependents; cycles and missing
// modules refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpioWriter } from './cpio.ts';
import { insmodOrder, modinfoDepends } from './artifacts.ts';
import { RamDiffer, RamDiffError, rangeText, ZERO_RUN_PAGES_MIN, zeroRunText } from './ramdiff.ts';

const text = (b: Uint8Array, from: number, len: number): string => new TextDecoder().decode(b.subarray(from, from + len));

test('newc entries: 110-byte header, NUL-terminated name, 4-byte padding, trailer, 512-byte total', () => {
  const c = new CpioWriter();
  c.file('init', new TextEncoder().encode('#!/bin/sh\n'), 0o755);
  const out = c.finish();
  assert.equal(out.length % 512, 0);
  assert.equal(text(out, 0, 6), '070701');
  const field = (i: number): number => parseInt(text(out, 6 + i * 8, 8), 16);
  assert.equal(field(1), 0o100755, 'mode');
  assert.equal(field(6), 10, 'file size');
  assert.equal(field(11), 5, 'name size with NUL');
  assert.equal(text(out, 110, 4), 'init');
  assert.equal(out[114], 0);
  // 110 + 5 = 115, padded to 116; the data follows.
  assert.equal(text(out, 116, 10), '#!/bin/sh\n');
  assert.ok(text(out, 0, out.length).includes('TRAILER!!!'));
  const again = new CpioWriter();
  again.file('init', new TextEncoder().encode('#!/bin/sh\n'), 0o755);
  assert.deepEqual(again.finish(), out, 'deterministic (mtime 0, root-owned)');
});

test('modules load after their dependencies; cycles and missing modules are refused', () => {
  const ko = (deps: string): Uint8Array => new TextEncoder().encode(`\0license=GPL\0depends=${deps}\0vermagic=6.1\0`);
  assert.deepEqual(modinfoDepends(ko('virtio,virtio_ring')), ['virtio', 'virtio_ring']);
  const kos = new Map([
    ['virtio_ring', ko('')],
    ['virtio', ko('virtio_ring')],
    ['virtio_balloon', ko('virtio,virtio_ring')],
  ]);
  assert.deepEqual(insmodOrder(['virtio_balloon'], kos, new Set()), ['virtio_ring', 'virtio', 'virtio_balloon']);
  assert.deepEqual(insmodOrder(['virtio_balloon'], kos, new Set(['virtio_ring'])), ['virtio', 'virtio_balloon']);
  assert.throws(() => insmodOrder(['x'], new Map([['x', ko('y')], ['y', ko('x')]]), new Set()), /cycle/);
  assert.throws(() => insmodOrder(['nope'], kos, new Set()), /neither built in/);
});

test('ramdiff: pages classified as ramdiff.py does, runs grouped across chunks', () => {
  const PAGE = 4096;
  const pages = 6;
  const src = new Uint8Array(pages * PAGE);
  const dst = new Uint8Array(pages * PAGE);
  const put = (b: Uint8Array, page: number, value: number): void => void (b[page * PAGE + 17] = value);
  put(src, 0, 1); put(dst, 0, 1); // same
  put(dst, 1, 2); // src zero: hinted and held
  put(src, 2, 3); // dst zero: never sent
  put(src, 3, 4); put(dst, 3, 5); // both non-zero: stale
  put(src, 4, 6); put(dst, 4, 7); // stale, the same run across the chunk edge
  const d = new RamDiffer();
  d.push(src.subarray(0, 4 * PAGE), dst.subarray(0, 4 * PAGE));
  d.push(src.subarray(4 * PAGE), dst.subarray(4 * PAGE));
  const r = d.result();
  assert.deepEqual(r.pages, { same: 2, src_zero: 1, dst_zero: 1, both_nonzero: 2 });
  assert.deepEqual(r.ranges.map(rangeText), ['0x1000+1 src_zero', '0x2000+1 dst_zero', '0x3000+2 both_nonzero']);
  assert.throws(() => d.push(new Uint8Array(PAGE), new Uint8Array(2 * PAGE)), RamDiffError);
  assert.throws(() => d.push(new Uint8Array(100), new Uint8Array(100)), /whole pages/);
});

test('the source\'s zero pages: counted, and their long runs kept across chunk edges, with the run at the end', () => {
  const PAGE = 4096;
  const pages = 200;
  const src = new Uint8Array(pages * PAGE);
  // Data at 0-9, 50-60, 70-99, 150 and 199; zero elsewhere: runs 10-49 (40 pages, across the
  // chunk edge at 37), 100-149 (50, across 120) and 151-198 (48) are kept; 61-69 (9 pages) is
  // counted but not kept.
  for (const p of [...Array.from({ length: 10 }, (_, i) => i), 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79,
    ...Array.from({ length: 20 }, (_, i) => 80 + i), 150, 199]) src[p * PAGE + 5] = 1;
  const dst = src.slice();
  const d = new RamDiffer();
  for (const [from, to] of [[0, 37], [37, 120], [120, pages]]) d.push(src.subarray(from * PAGE, to * PAGE), dst.subarray(from * PAGE, to * PAGE));
  const r = d.result();
  assert.equal(ZERO_RUN_PAGES_MIN, 32);
  assert.equal(r.sourceZero.pages, 40 + 9 + 50 + 48);
  assert.deepEqual(r.sourceZero.runs.map(zeroRunText), ['0xa000+40', '0x64000+50', '0x97000+48']);
  assert.equal(r.pages.same, pages);
  // A run that reaches the end of the dump is kept too.
  const tail = new RamDiffer();
  const t = new Uint8Array(40 * PAGE);
  t[5] = 1;
  tail.push(t, t);
  assert.deepEqual(tail.result().sourceZero, { pages: 39, runs: [{ firstPage: 1, pageCount: 39 }] });
});
