import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bitmap } from '../lib/bitmap.ts';
import { DirtyLog } from './dirty-log.ts';
import { FaultDirtyLog, type DirtyLogFaults } from './fault-dirty-log.ts';

const OFF: DirtyLogFaults = { tcgTlb: false, staleTlb: false, manualProtect: false, chunkPages: 64 };

function synced(log: DirtyLog): number[] {
  const into = new Bitmap(log.pageCount);
  log.sync(into);
  const out: number[] = [];
  for (let p = into.nextSet(0); p !== -1; p = into.nextSet(p + 1)) out.push(p);
  return out;
}

test('TCG TLB: a write after a sync is logged when the sync resets the TLB state, lost with the 7.2 fast path until a flush', () => {
  for (const staleTlb of [false, true]) {
    const log = new FaultDirtyLog(128, { ...OFF, tcgTlb: true, staleTlb });
    log.markDirty(5);
    assert.deepEqual(synced(log), [5]);
    log.markDirty(5); // the second write, after the sync
    assert.deepEqual(synced(log), staleTlb ? [] : [5], `staleTlb=${staleTlb}`);
    assert.equal(log.unloggedWrites, staleTlb ? 1 : 0);
    log.flushTlb();
    log.markDirty(5);
    assert.deepEqual(synced(log), [5], 'after a TLB flush the write is logged again');
  }
});

test('KVM manual protect: GET keeps the bits; a hint CLEAR drops a write made between GET and CLEAR (seed 691 at log level)', () => {
  const log = new FaultDirtyLog(256, { ...OFF, manualProtect: true });
  log.markDirty(70);
  assert.deepEqual(synced(log), [70]);
  assert.ok(log.isDirty(70), 'GET leaves the fetched bit set');
  log.markDirty(70); // the reuser's write: no new bit, already set
  log.markDirty(71); // a page not fetched: its bit is new
  log.clearForHint(64, 72, 'masked');
  assert.deepEqual(synced(log), [71], 'the write to page 70 is gone, page 71 survives (masked by the GET)');
  // Page 71's bit, fetched by that GET, is not CLEARed yet: the next GET reports it again (a resend).
  assert.deepEqual(synced(log), [71]);
  // A send CLEARs its chunk once per sync; a write after that CLEAR is logged.
  const log2 = new FaultDirtyLog(256, { ...OFF, manualProtect: true });
  log2.markDirty(130);
  assert.deepEqual(synced(log2), [130]);
  log2.beforeSend(129);
  log2.markDirty(130);
  assert.deepEqual(synced(log2), [130], 'a write after the CLEAR is logged');
});

test('wide clear: a hint clears every bit of the chunks it touches; the exact log keeps them', () => {
  const log = new FaultDirtyLog(256, OFF);
  for (const p of [3, 63, 64, 200]) log.markDirty(p);
  log.clearForHint(60, 62, 'unmasked');
  assert.deepEqual(synced(log), [64, 200], 'pages 3 and 63 share the hinted chunk 0');
  const exact = new DirtyLog(256);
  for (const p of [3, 63]) exact.markDirty(p);
  assert.deepEqual(synced(exact), [3, 63]);
});
