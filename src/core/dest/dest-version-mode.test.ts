// The simulator's compact `version` payload mode through the whole engine: versions land in a
// compact store with setVersion, exact pages (the exact mark plus real bytes) land as bytes,
// and postcopy placement, faults and page-ready work exactly as with real pages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeNestedStream, encodeToBytes } from '../../format/stream-encoder.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { CompactBacking } from '../../memory/compact-backing.ts';
import { RamBlockList } from '../../memory/ram-block.ts';
import { ReceivedMap } from '../../memory/received-map.ts';
import { DestEngine } from './dest-engine.ts';
import { Feeder, PAGE, RAM_SECTION_ID, RecordingHooks, effectsOf, returnPathMessages, statusMoves } from './dest.test-util.ts';

const PAGES = 16;

/** Source pages: version 10 + i, except page 3 (exact random bytes) and page 0 (zero). */
function sourceVersion(i: number): number {
  return i === 0 ? 0 : 10 + i;
}

test('version mode: a postcopy stream of versions and one exact page loads into a compact store', () => {
  const exact = new BytesBacking(PAGES * PAGE);
  for (let i = 0; i < PAGE; i++) exact.bytes[3 * PAGE + i] = (i * 7 + 3) & 0xff;
  const page = (e: Parameters<Parameters<typeof encodeToBytes>[0]>[0], i: number) => {
    if (i === 0) e.ramZeroPage('ram', 0);
    else if (i === 3) e.ramPageVersionExact('ram', 3, exact, 3);
    else e.ramPageVersion('ram', i, sourceVersion(i));
  };
  const prefix = encodeToBytes((e) => {
    e.header();
    e.configuration({ machine: 'none' });
    e.command({ kind: 'open-return-path' });
    e.command({ kind: 'postcopy-advise', pageSizeSummary: PAGE, targetPageSize: PAGE });
    e.sectionStart(RAM_SECTION_ID, 'ram', 0, 4);
    e.ramMemSize([{ name: 'ram', usedLengthBytes: PAGES * PAGE }]);
    e.ramEos();
    e.footer(RAM_SECTION_ID);
    e.sectionPart(RAM_SECTION_ID);
    for (let i = 0; i < 8; i++) page(e, i);
    e.ramEos();
    e.footer(RAM_SECTION_ID);
    e.command({ kind: 'postcopy-ram-discard', blockName: 'ram', ranges: [{ startBytes: 2 * PAGE, lengthBytes: (PAGES - 2) * PAGE }] });
    e.packaged(encodeNestedStream((n) => {
      n.command({ kind: 'postcopy-listen' });
      n.command({ kind: 'postcopy-run' });
    }));
    e.resetLastBlock();
  });
  const rest = (from: number, to: number, end: boolean) =>
    encodeToBytes((e) => {
      e.sectionPart(RAM_SECTION_ID);
      for (let i = from; i < to; i++) page(e, i);
      e.ramEos();
      e.footer(RAM_SECTION_ID);
      if (end) e.eof();
    });

  const store = new CompactBacking(PAGES);
  const received = new ReceivedMap(PAGES);
  const engine = new DestEngine({
    ram: { blocks: RamBlockList.single('ram', PAGES * PAGE), store, received },
    hooks: new RecordingHooks(),
    vcpuCount: 1,
    capabilities: { 'postcopy-ram': true },
    payloadMode: 'version',
  });
  const feeder = new Feeder(engine);
  feeder.pushSplit(prefix, [50, 51, 52, 120]);
  assert.equal(engine.status, 'postcopy-active', engine.lastError?.message);
  assert.equal(received.count(), 2); // pages 0 and 1; 2..7 were discarded
  const fault = feeder.fault(0, 9);
  assert.equal(fault.present, false);
  assert.deepEqual(returnPathMessages(fault.effects), [{ kind: 'req-pages-id', startBytes: 9 * PAGE, lengthBytes: PAGE, blockName: 'ram' }]);
  const arrived = feeder.push(rest(8, 10, false));
  assert.deepEqual(effectsOf(arrived, 'page-ready'), [{ kind: 'page-ready', pageIndex: 9 }]);
  feeder.push(rest(2, 8, false));
  feeder.push(rest(10, PAGES, true));
  assert.equal(engine.status, 'completed', engine.lastError?.message);
  assert.deepEqual(statusMoves(feeder.effects), ['none→active', 'active→postcopy-active', 'postcopy-active→completed']);
  assert.equal(engine.isComplete(), true);
  for (let i = 0; i < PAGES; i++) {
    if (i === 3) assert.equal(store.pageEquals(exact, 3), true);
    else assert.equal(store.pageVersion(i), sourceVersion(i), `page ${i}`);
  }
  // PAGE records: pages 1..7 before the switch, pages 2..15 after it (page 0 is a ZERO record).
  assert.equal(engine.stats().pagesReceived, 7 + 14);
  assert.equal(engine.stats().zeroPagesReceived, 1);
});
