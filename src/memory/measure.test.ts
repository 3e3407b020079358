// Runs the memory-layer measurements: once with a fake clock to check the arithmetic, and once
// at the reported sizes (64 GiB dirty-log sync at 1%, 64 MiB of one-byte-per-page writes,
// 16M-page bookkeeping) with the real clock, printing the figures as test diagnostics. No
// assertion depends on time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatMemoryFigures, measureBookkeeping, measureDirtySync, measureDirtyWriteThroughput, measureMemoryLayer } from './measure.ts';

/** A fake clock that advances 1000 ns per reading. */
function steppingClock(): () => number {
  let nowNs = 0;
  return () => (nowNs += 1000);
}

test('measurements compute their figures from the clock they are given', () => {
  const sync = measureDirtySync(steppingClock(), { pageCount: 4096, dirtyFraction: 0.1, runs: 3 });
  assert.equal(sync.syncTimeNsMin, 1000);
  assert.equal(sync.syncTimeNsMedian, 1000);
  assert.ok(sync.dirtyPageCount > 350 && sync.dirtyPageCount <= 410, `${sync.dirtyPageCount} dirty pages`);
  const writes = measureDirtyWriteThroughput(steppingClock(), { sizeBytes: 64 * 4096, passes: 2 });
  assert.equal(writes.pagesWritten, 128);
  assert.equal(writes.elapsedNs, 2000);
  assert.equal(writes.pagesPerSecond, 128 * 1e9 / 2000);
  const book = measureBookkeeping({ pageCount: 1 << 20, versionBits: 16 });
  assert.equal(book.compactBytesPerPage, 2);
  assert.equal(book.dirtyLogBytesPerPage, 0.125);
  assert.equal(book.migrationBitmapBytesPerPage, 0.125);
  assert.ok(book.receivedMapBytesPerPage > 0.125 && book.receivedMapBytesPerPage < 0.126);
});

test('memory-layer figures at the reported sizes', (t) => {
  const clockNs = (): number => Number(process.hrtime.bigint());
  const figures = measureMemoryLayer(clockNs);
  for (const line of formatMemoryFigures(figures)) t.diagnostic(line);
  assert.equal(figures.dirtySync.pageCount, 16_777_216);
  assert.equal(figures.bookkeeping.compactBytesPerPage, 4);
  assert.ok(figures.bookkeeping.projected1TiBBytes < 2 * 2 ** 30, '1 TiB fits in 2 GiB');
  const small = measureBookkeeping({ versionBits: 16 });
  t.diagnostic(`with 16-bit versions: ${small.totalBytesPerPage.toFixed(6)} B/page, 1 TiB guest ${(small.projected1TiBBytes / 2 ** 30).toFixed(3)} GiB`);
});
