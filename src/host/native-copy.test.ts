import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PAGE_SIZE_BYTES } from '../memory/page-content.ts';
import { nativePageCopier } from './native-copy.ts';

const PAGES = 4;

function digest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

test('nativePageCopier writes what set writes, from sources at every alignment, into an offset view of shared RAM', () => {
  const shared = new Uint8Array(new SharedArrayBuffer((PAGES + 1) * PAGE_SIZE_BYTES)).subarray(PAGE_SIZE_BYTES);
  const plain = new Uint8Array(PAGES * PAGE_SIZE_BYTES);
  const copy = nativePageCopier(shared);
  const source = new Uint8Array(PAGE_SIZE_BYTES + 16);
  for (let i = 0; i < source.length; i++) source[i] = (i * 131 + 7) & 0xff;
  for (let shift = 0; shift < 8; shift++) {
    const page = (shift * 3) % PAGES;
    const bytes = source.subarray(shift, shift + PAGE_SIZE_BYTES);
    copy(page, bytes);
    plain.set(bytes, page * PAGE_SIZE_BYTES);
    assert.equal(digest(shared), digest(plain), `source offset ${shift}, page ${page}`);
  }
  // The page before the view's start was never touched.
  assert.equal(new Uint8Array(shared.buffer, 0, PAGE_SIZE_BYTES).every((b) => b === 0), true);
});

test('nativePageCopier refuses a payload that is not one page', () => {
  const copy = nativePageCopier(new Uint8Array(new SharedArrayBuffer(2 * PAGE_SIZE_BYTES)));
  assert.throws(() => copy(0, new Uint8Array(PAGE_SIZE_BYTES - 1)), (e: unknown) => e instanceof RangeError && e.message === 'page copy of 4095 bytes, expected 4096');
});
