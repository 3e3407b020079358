// Tests for the page content helpers: the page digest is MurmurHash3 x86 32-bit (checked
// against a byte-wise reference that reproduces the published test vectors), digests and
// comparisons agree for aligned and unaligned pages, and single compact words agree with
// materialized pages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  PAGE_SIZE_BYTES,
  compactByte,
  compactWord,
  digestPageBytes,
  isZeroPageBytes,
  materializeCompactPage,
  pageBytesEqual,
} from './page-content.ts';

/** MurmurHash3_x86_32 over bytes, written byte-wise with the tail step. */
function referenceMurmur3(bytes: Uint8Array, seed: number): number {
  let h = seed >>> 0;
  const mixK = (k: number): number => {
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    return Math.imul(k, 0x1b873593);
  };
  const blocks = bytes.length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    h ^= mixK(bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  const tail = bytes.length & 3;
  if (tail >= 3) k ^= bytes[blocks + 2] << 16;
  if (tail >= 2) k ^= bytes[blocks + 1] << 8;
  if (tail >= 1) h ^= mixK(k ^ bytes[blocks]);
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

test('the reference MurmurHash3 reproduces published vectors', () => {
  assert.equal(referenceMurmur3(new Uint8Array(0), 0), 0);
  assert.equal(referenceMurmur3(new Uint8Array(0), 1), 0x514e28b7);
  assert.equal(referenceMurmur3(new Uint8Array(0), 0xffffffff), 0x81f16f39);
  assert.equal(referenceMurmur3(new Uint8Array(4), 0), 0x2362f9de);
  assert.equal(referenceMurmur3(text('aaaa'), 0x9747b28c), 0x5a97808a);
  assert.equal(referenceMurmur3(text('Hello, world!'), 0x9747b28c), 0x24884cba);
  assert.equal(referenceMurmur3(text('The quick brown fox jumps over the lazy dog'), 0x9747b28c), 0x2fa826cd);
});

test('page digests are MurmurHash3 of the page, aligned or not', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: PAGE_SIZE_BYTES, maxLength: PAGE_SIZE_BYTES }), fc.integer({ min: 0, max: 7 }), (page, shift) => {
      const digest = digestPageBytes(page);
      assert.equal(digest, referenceMurmur3(page, 0));
      const shifted = new Uint8Array(PAGE_SIZE_BYTES + 8);
      shifted.set(page, shift);
      assert.equal(digestPageBytes(shifted, shift), digest);
      assert.ok(pageBytesEqual(page, 0, shifted, shift));
      shifted[shift + 4095] ^= 1;
      assert.ok(!pageBytesEqual(page, 0, shifted, shift));
      assert.equal(isZeroPageBytes(shifted, shift), false);
    }),
    { numRuns: 30 },
  );
  assert.ok(isZeroPageBytes(new Uint8Array(PAGE_SIZE_BYTES + 3), 3));
});

test('single compact words and bytes agree with the materialized page', () => {
  fc.assert(
    fc.property(fc.maxSafeNat(), fc.integer({ min: 0, max: 0xfffffeff }), fc.integer({ min: 0, max: 5 }), (pageIndex, version, shift) => {
      const out = new Uint8Array(PAGE_SIZE_BYTES + 8);
      materializeCompactPage(pageIndex, version, out, shift);
      const view = new DataView(out.buffer, shift);
      for (const k of [0, 1, 2, 3, 511, 1023]) assert.equal(compactWord(pageIndex, version, k), view.getUint32(4 * k, true));
      for (const at of [0, 1, 7, 8, 9, 4095]) assert.equal(compactByte(pageIndex, version, at), out[shift + at]);
      assert.equal(isZeroPageBytes(out, shift), version === 0);
    }),
    { numRuns: 50 },
  );
});
