// WrittenPages: runs of written / never-written pages match a page-by-page oracle across word
// edges; bits fetched by a sync or cleared by clearRange stay recorded as written; explicit
// marks (markRange, markFrom, markAll) count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bitmap } from '../lib/bitmap.ts';
import { Prng } from '../lib/prng.ts';
import { DirtyLog } from './dirty-log.ts';
import { WrittenPages } from './written-pages.ts';

/** The run lengths computed page by page from `isWritten`. */
function oracleRun(isWritten: (page: number) => boolean, page: number, count: number, pageCount: number, written: boolean): number {
  let n = 0;
  while (n < count && page + n < pageCount && isWritten(page + n) === written) n++;
  return n;
}

test('runs match a page-by-page oracle over history and live log bits', () => {
  const pageCount = 1000;
  const prng = new Prng(7);
  const log = new DirtyLog(pageCount);
  const written = new WrittenPages(log);
  const truth = new Set<number>();
  // Clustered writes: long runs of each state, some crossing 32-page words.
  for (let k = 0; k < 12; k++) {
    const start = prng.int(0, pageCount - 1);
    const length = prng.int(1, 80);
    for (let p = start; p < Math.min(pageCount, start + length); p++) truth.add(p);
    if (k % 3 === 0) written.markRange(start, Math.min(pageCount, start + length));
    else log.markRange(start, Math.min(pageCount, start + length));
  }
  const isWritten = (p: number): boolean => truth.has(p);
  for (let page = 0; page < pageCount; page++) {
    for (const count of [1, 5, 31, 32, 33, 100, 5000]) {
      assert.equal(written.unwrittenRun(page, count), oracleRun(isWritten, page, count, pageCount, false), `unwritten ${page}+${count}`);
      assert.equal(written.writtenRun(page, count), oracleRun(isWritten, page, count, pageCount, true), `written ${page}+${count}`);
    }
    assert.equal(written.isWritten(page), isWritten(page));
  }
});

test('a sync and a clearRange leave the fetched pages recorded as written', () => {
  const log = new DirtyLog(256);
  const written = new WrittenPages(log);
  log.markRange(10, 50);
  log.markDirty(200);
  const dest = new Bitmap(256);
  assert.equal(log.syncRange(dest, 0, 40), 30);
  assert.equal(log.sync(dest), 11);
  assert.equal(log.count(), 0, 'the log is empty after the syncs');
  log.markDirty(100);
  assert.equal(log.clearRange(96, 104), 1);
  assert.equal(log.count(), 0);
  assert.equal(written.unwrittenRun(0, 256), 10);
  assert.equal(written.writtenRun(10, 256), 40);
  assert.equal(written.unwrittenRun(50, 256), 50);
  assert.equal(written.writtenRun(100, 256), 1);
  assert.equal(written.writtenRun(200, 256), 1);
  assert.equal(written.unwrittenRun(201, 256), 55, 'runs stop at the page count');
});

test('markFrom and markAll', () => {
  const log = new DirtyLog(100);
  const written = new WrittenPages(log);
  const placed = new Bitmap(100);
  placed.setRange(40, 45);
  written.markFrom(placed);
  assert.equal(written.unwrittenRun(0, 100), 40);
  assert.equal(written.writtenRun(40, 100), 5);
  written.markAll();
  assert.equal(written.unwrittenRun(0, 100), 0);
  assert.equal(written.writtenRun(0, 100), 100);
});
