// Scale: a 16 GiB compact guest (4,194,304 pages) in `version` mode, several blocks, a sprinkle
// of written pages, migrated without a rate limit and decoded on the destination. It checks the
// word-at-a-time scan (runs across words, clean words skipped, block order and wrap-around) at
// a size where per-page overhead would show, and that counts add up. Throughput is measured by
// hand (see the report); this test only bounds the time generously.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { GiB } from '../../lib/units.ts';
import { caps, Destination, drive, engineFor, Guest, MS, params } from './source-harness.test-util.ts';

const PAGES = 4 * 1024 * 1024;

test('a 16 GiB compact guest migrates in version mode, block by block, with every page accounted for', () => {
  const guest = new Guest('compact', PAGES, [
    { name: 'small', offsetBytes: 0, sizeBytes: 1 * GiB },
    { name: 'pc.ram', offsetBytes: 1 * GiB, sizeBytes: 15 * GiB },
  ]);
  let written = 0;
  for (let p = 0; p < PAGES; p += 97) {
    guest.write(p, p);
    written++;
  }
  const { engine } = engineFor(guest, {
    payloadMode: 'version',
    capabilities: caps(),
    parameters: params({ maxBandwidthBytesPerSec: 0 }),
    maxChunkPages: 1 << 20,
    chunkSizeBytes: 4 << 20,
  });
  const dest = new Destination(guest, 'version');
  const t0 = performance.now();
  dest.take(engine.start(0));
  // Pages written during the migration, behind and ahead of the scan.
  const { nowNs } = drive(engine, dest, 0, {
    budgetBytes: Infinity,
    stepNs: 10 * MS,
    beforePump: (_now, i) => {
      if (i < 3) for (let k = 0; k < 1000; k++) guest.write((i * 1_000_003 + k * 4099) % PAGES, k);
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(engine.status, 'completed');
  const ram = engine.queryMigrate(nowNs).ram!;
  assert.ok(ram.duplicate + ram.normal >= PAGES);
  assert.ok(ram.normal >= written);
  // The big block comes first in QEMU's list order: its first record names it.
  const firstPage = dest.arrivals[0].page;
  assert.equal(firstPage, (1 * GiB) / 4096);
  for (let p = 0; p < PAGES; p += 4099) assert.ok(dest.store.pageEquals(guest.store, p), `page ${p}`);
  for (let p = 0; p < PAGES; p += 97) assert.ok(dest.store.pageEquals(guest.store, p), `page ${p}`);
  assert.ok(seconds < 30, `${seconds.toFixed(1)} s`);
});
