// prefaultPages: the touch never changes the content of a written or received page, reports
// "all zero" exactly when every such page of the range is zero, and does not read the pages
// that are zero by bookkeeping (never written, never received).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Bitmap } from '../lib/bitmap.ts';
import { Prng } from '../lib/prng.ts';
import { DirtyLog } from '../memory/dirty-log.ts';
import { WrittenPages } from '../memory/written-pages.ts';
import { prefaultPages, type PrefaultRam } from './prefault.ts';

const PAGE_BYTES = 4096;
const PAGE_COUNT = 200;

function makeRam(): PrefaultRam & { log: DirtyLog } {
  const buffer = new SharedArrayBuffer(PAGE_COUNT * PAGE_BYTES);
  const log = new DirtyLog(PAGE_COUNT);
  return { words: new Uint32Array(buffer), bytes: new Uint8Array(buffer), written: new WrittenPages(log), received: new Bitmap(PAGE_COUNT), log };
}

const digest = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

test('prefault keeps every written or received page as it was, over random layouts and ranges', () => {
  const prng = new Prng(0x9f1);
  for (let round = 0; round < 40; round++) {
    const ram = makeRam();
    // Written pages (history or live log) and received pages, some with content (first word
    // included, which a store of zero would destroy), some zero.
    const nonZero = new Set<number>();
    for (let k = 0; k < 30; k++) {
      const page = prng.int(0, PAGE_COUNT - 1);
      const how = prng.int(0, 2);
      if (how === 0) ram.written.markRange(page, page + 1);
      else if (how === 1) ram.log.markRange(page, page + 1);
      else ram.received.set(page);
      if (prng.int(0, 1) === 1) {
        ram.bytes.fill(1 + prng.int(0, 254), page * PAGE_BYTES, page * PAGE_BYTES + prng.int(1, PAGE_BYTES));
        nonZero.add(page);
      }
    }
    const before = digest(ram.bytes);
    const first = prng.int(0, PAGE_COUNT - 1);
    const end = prng.int(first + 1, PAGE_COUNT);
    const allZero = prefaultPages(ram, first, end);
    assert.equal(digest(ram.bytes), before, `round ${round}: content changed`);
    const expected = ![...nonZero].some((page) => page >= first && page < end);
    assert.equal(allZero, expected, `round ${round}: [${first}, ${end})`);
  }
});

test('prefault does not read pages that are zero by bookkeeping: never written, never received', () => {
  const ram = makeRam();
  // Content the bookkeeping does not know about (no real writer does this): past the first
  // word, so the store of zero leaves it, and the verdict shows it was not read.
  ram.bytes[10 * PAGE_BYTES + 100] = 7;
  assert.equal(prefaultPages(ram, 0, PAGE_COUNT), true);
  assert.equal(ram.bytes[10 * PAGE_BYTES + 100], 7);
  // Once the page counts as written it is read, and found non-zero.
  ram.written.markRange(10, 11);
  assert.equal(prefaultPages(ram, 0, PAGE_COUNT), false);
  // A received page is read too.
  const other = makeRam();
  other.bytes[20 * PAGE_BYTES + 5] = 1;
  other.received.set(20);
  assert.equal(prefaultPages(other, 15, 25), false);
  assert.equal(prefaultPages(other, 21, 25), true);
});
