// Destination engine, postcopy-preempt (facts §3.10): the source engine's real preempt-channel
// output (bare RAM records: named, CONTINUE, ZERO, EOS) decoded at every split offset, in both
// payload modes, placed exactly once together with the main channel; a postcopy EOF that
// arrives before the preempt channel's EOS waits for it; a page on both channels is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concatBytes } from '../../lib/bytes.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { CompactBacking } from '../../memory/compact-backing.ts';
import type { PageStore } from '../../memory/page-store.ts';
import { RamBlockList } from '../../memory/ram-block.ts';
import { ReceivedMap } from '../../memory/received-map.ts';
import type { Effect, PagePayloadMode, StepResult } from '../engine-types.ts';
import { caps, engineFor, Guest, rp, SHUT_OK } from '../source/source-harness.test-util.ts';
import { DestEngine } from './dest-engine.ts';
import { MIG_ERR_DEST_PLACED_TWICE } from './dest-errors.ts';
import { encodeToBytes } from '../../format/stream-encoder.ts';

const PAGE = 4096;
const MS = 1_000_000;
const SPECS = [
  { name: 'a', offsetBytes: 0, sizeBytes: 8 * PAGE },
  { name: 'b', offsetBytes: 8 * PAGE, sizeBytes: 8 * PAGE },
];
const PAGES = 16;
/** Requested pages: b+3 (data), b+4 (zero: a CONTINUE ZERO record), a+5 (data, named). */
const REQUESTED = [8 + 3, 8 + 4, 5];

interface Capture {
  readonly guest: Guest;
  /** Main-channel bytes up to the end of the switch (PING 4). */
  readonly mainPrefix: Uint8Array;
  /** The rest of the main channel, EOF included. */
  readonly mainRest: Uint8Array;
  /** Everything the source wrote on the preempt channel. */
  readonly preempt: Uint8Array;
}

/** Runs a source with postcopy-preempt to completion, requesting REQUESTED after the switch. */
function capture(mode: PagePayloadMode): Capture {
  const guest = new Guest(mode === 'bytes' ? 'bytes' : 'compact', PAGES, SPECS);
  for (let p = 0; p < PAGES; p++) if (p !== 8 + 4 && p !== 2) guest.write(p, p * 7);
  const { engine } = engineFor(guest, { capabilities: caps('postcopy-ram', 'postcopy-preempt'), payloadMode: mode, maxChunkPages: 2 });
  const main: Uint8Array[] = [];
  const preempt: Uint8Array[] = [];
  const take = (r: StepResult): void => {
    for (const e of r.effects) {
      if (e.kind !== 'send') continue;
      (e.channel === 'preempt' ? preempt : main).push(e.data);
    }
  };
  take(engine.start(0));
  assert.equal(engine.startPostcopy(0).error, null);
  let now = 0;
  const phase = (): string => engine.phase;
  while (phase() !== 'postcopy') take(engine.pump((now += MS), 2 * PAGE));
  const mainPrefix = concatBytes(main.splice(0));
  take(engine.onReturnPath(now, rp(
    { kind: 'req-pages-id', startBytes: 3 * PAGE, lengthBytes: 2 * PAGE, blockName: 'b' },
    { kind: 'req-pages-id', startBytes: 5 * PAGE, lengthBytes: PAGE, blockName: 'a' },
  )));
  while (phase() !== 'awaiting-shut') take(engine.pump((now += MS), 2 * PAGE));
  engine.onReturnPath(now, rp(SHUT_OK));
  assert.equal(engine.status, 'completed');
  return { guest, mainPrefix, mainRest: concatBytes(main), preempt: concatBytes(preempt) };
}

function destFor(mode: PagePayloadMode): { engine: DestEngine; store: PageStore; received: ReceivedMap } {
  const store: PageStore = mode === 'bytes' ? new BytesBacking(PAGES * PAGE) : new CompactBacking(PAGES);
  const received = new ReceivedMap(PAGES);
  const engine = new DestEngine({
    ram: { blocks: new RamBlockList(SPECS), store, received },
    hooks: { loadDevice: () => null, postcopyNotify: () => null, localZeroPages: () => null },
    vcpuCount: 1,
    capabilities: { 'postcopy-ram': true, 'postcopy-preempt': true },
    payloadMode: mode,
  });
  return { engine, store, received };
}

function samePages(a: PageStore, b: PageStore): boolean {
  const x = new Uint8Array(PAGE);
  const y = new Uint8Array(PAGE);
  for (let p = 0; p < PAGES; p++) {
    a.copyPageOut(p, x, 0);
    b.copyPageOut(p, y, 0);
    if (!Buffer.from(x).equals(Buffer.from(y))) return false;
  }
  return true;
}

for (const mode of ['bytes', 'version'] as const) {
  test(`preempt (${mode} mode): the source's preempt output, split at every offset, places each requested page once; EOF waits for the preempt EOS`, () => {
    const c = capture(mode);
    // Named PAGE b+3, CONTINUE ZERO b+4, named PAGE a+5, EOS: the records the source wrote.
    assert.equal(new DataView(c.preempt.buffer, c.preempt.byteOffset).getUint32(4), (3 * PAGE) | 0x08);
    assert.deepEqual([...c.preempt.subarray(-8)], [0, 0, 0, 0, 0, 0, 0, 0x10]);
    for (let k = 0; k <= c.preempt.length; k++) {
      const { engine, store, received } = destFor(mode);
      const effects: Effect[] = [];
      const push = (channel: 'main' | 'preempt', bytes: Uint8Array): void => {
        if (bytes.length > 0) effects.push(...engine.onBytes(channel, bytes, MS).effects);
      };
      push('main', c.mainPrefix);
      assert.equal(engine.status, 'postcopy-active');
      const fault = engine.onGuestFault(0, REQUESTED[0], MS);
      assert.equal(fault.present, false);
      push('preempt', c.preempt.subarray(0, k));
      push('main', c.mainRest);
      const eosSeen = k === c.preempt.length;
      assert.equal(engine.status, eosSeen ? 'completed' : 'postcopy-active', `split ${k}`);
      if (!eosSeen) assert.ok(effects.some((e) => e.kind === 'mark' && e.name === 'eof-waits-for-preempt-eos'), `split ${k}`);
      push('preempt', c.preempt.subarray(k));
      assert.equal(engine.status, 'completed', `split ${k}: ${engine.lastError?.message ?? ''}`);
      const stats = engine.stats();
      assert.equal(stats.placedTwiceAttempts, 0);
      assert.equal(stats.faultsReleasedAtEnd, 0, `split ${k}: the fault was not served by its page`);
      assert.ok(effects.some((e) => e.kind === 'page-ready' && e.pageIndex === REQUESTED[0]));
      assert.equal(received.isComplete(), true);
      assert.equal(stats.postcopyPagesPlaced, PAGES);
      assert.equal(engine.preemptBytesReceived, c.preempt.length);
      if (k % 512 === 0 || k === c.preempt.length) assert.ok(samePages(store, c.guest.store), `split ${k}: RAM differs`);
    }
  });
}

test('preempt: a page already placed from the main channel is refused on the preempt channel (exactly once across channels)', () => {
  const c = capture('bytes');
  const { engine } = destFor('bytes');
  engine.onBytes('main', c.mainPrefix, MS);
  engine.onBytes('main', c.mainRest.subarray(0, c.mainRest.length - 1), MS); // all but EOF
  // A named ZERO record for a+0, which the main channel placed already.
  const again = encodeToBytes((e) => e.ramZero('a', 0));
  engine.onBytes('preempt', again, 2 * MS);
  assert.equal(engine.status, 'postcopy-paused');
  assert.equal(engine.lastError?.code, MIG_ERR_DEST_PLACED_TWICE);
  assert.equal(engine.lastError?.message, 'postcopy_place_page_zero: File exists zero host: 0x0');
});

test('preempt: a malformed record fails like the main stream would, and the preempt channel closing before EOS pauses', () => {
  const c = capture('bytes');
  const bad = destFor('bytes');
  bad.engine.onBytes('main', c.mainPrefix, MS);
  // MEM_SIZE (0x04) is not a postcopy record.
  bad.engine.onBytes('preempt', new Uint8Array([0, 0, 0, 0, 0, 0, 0x10, 0x04]), MS);
  assert.equal(bad.engine.status, 'postcopy-paused');
  assert.match(bad.engine.lastError?.message ?? '', /^Unknown combination of migration flags: 0x4 \(postcopy mode\)/);
  const cut = destFor('bytes');
  cut.engine.onBytes('main', c.mainPrefix, MS);
  cut.engine.onBytes('preempt', c.preempt.subarray(0, 100), MS);
  const closed = cut.engine.onChannelClosed('preempt', 2 * MS);
  assert.equal(cut.engine.status, 'postcopy-paused');
  assert.match(cut.engine.lastError?.message ?? '', /ended inside a record/);
  assert.ok(closed.effects.some((e) => e.kind === 'mark' && e.name === 'postcopy-paused' && e.detail === 'Detected IO failure for postcopy. Migration paused.'));
});
