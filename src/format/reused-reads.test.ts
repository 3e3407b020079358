// RAM records read as the real destination reads them (host/incoming.ts): chunks that are views
// of one buffer reused for every read and overwritten after each push. On an independent
// fixture built with Fx, per-record sinks and a sink taking ZERO runs log the same pages as the
// whole stream decoded at once, split in two at every offset, byte by byte and through the
// reused buffer at several read sizes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamDecoder } from './stream-decoder.ts';
import type { RamBlockRef } from './stream-types.ts';
import { Fx, RecordingSink, fnv, pageOf } from './stream-fixtures.test-util.ts';

/** A 1 KiB target page (TARGET_PAGE_BITS 10) keeps the every-offset split test short. */
const PS = 1024;
const OPTIONS = { targetPageBits: 10 };

/** Takes ZERO runs and logs them expanded into per-page entries; remembers run lengths. */
class RunSink extends RecordingSink {
  readonly zeroRuns: number[] = [];

  ramZeroRun(block: RamBlockRef, offsetBytes: number, pageCount: number): void {
    this.zeroRuns.push(pageCount);
    for (let i = 0; i < pageCount; i++) this.ramZero(block, offsetBytes + i * PS, 0);
  }
}

/**
 * A precopy RAM stream: blocks `a` (8 pages) and `bb` (4 pages); PAGE runs broken by a gap, a
 * backward jump, ZERO records (fill 0 and 7), a block switch, EOS and the end of a block. 1 KiB pages.
 */
function fixture(): Uint8Array {
  const f = new Fx().header().config('none');
  f.start(2, 'ram', 0, 4).memSize([['a', 8 * PS], ['bb', 4 * PS]]).eos().footer(2);
  f.part(2)
    .page(0, 'a', pageOf(1, PS))
    .page(PS, null, pageOf(2, PS))
    .page(2 * PS, null, pageOf(3, PS)) // a run of 3 with the named first page: 2 CONTINUE records
    .page(4 * PS, null, pageOf(4, PS)) // gap
    .page(5 * PS, null, pageOf(5, PS))
    .page(1 * PS, null, pageOf(6, PS)) // backward
    .zero(2 * PS, null)
    .zero(3 * PS, null)
    .page(6 * PS, null, pageOf(7, PS))
    .zero(7 * PS, null, 7)
    .page(7 * PS, null, pageOf(8, PS))
    .page(0, 'bb', pageOf(9, PS))
    .page(PS, null, pageOf(10, PS))
    .page(2 * PS, null, pageOf(11, PS))
    .page(3 * PS, null, pageOf(12, PS)) // the end of bb
    .eos()
    .footer(2);
  f.part(2).page(3 * PS, null, pageOf(13, PS)).page(0, 'a', pageOf(14, PS)).page(PS, null, pageOf(15, PS)).eos().footer(2);
  f.end(2).eos().footer(2);
  return f.eof().build();
}

function decodeWith(sink: RecordingSink, chunks: readonly Uint8Array[]): unknown[] {
  const d = new StreamDecoder(sink, OPTIONS);
  for (const c of chunks) d.push(c);
  d.end();
  return sink.log;
}

/** Chunks pushed as views of one buffer that is overwritten after each push. */
function decodeReused(sink: RecordingSink, bytes: Uint8Array, cuts: readonly number[]): unknown[] {
  const d = new StreamDecoder(sink, OPTIONS);
  const buffer = new Uint8Array(bytes.length);
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    buffer.set(bytes.subarray(at, cut));
    d.push(buffer.subarray(0, cut - at));
    buffer.fill(0x5a);
    at = cut;
  }
  d.end();
  return sink.log;
}

test('reused reads: the whole fixture gives the per-record log; fill-0 ZERO records of consecutive pages come as one run', () => {
  const bytes = fixture();
  const want = decodeWith(new RecordingSink(), [bytes]);
  const pages = (want as Array<Record<string, unknown>>).filter((e) => 'page' in e || 'zero' in e);
  assert.equal(pages.length, 18);
  assert.deepEqual(pages[0], { page: 'a', index: 0, offsetBytes: 0, data: fnv(pageOf(1, PS)), lengthBytes: PS });
  const runs = new RunSink();
  assert.deepEqual(decodeWith(runs, [bytes]), want);
  assert.deepEqual(runs.zeroRuns, [2]);
});

test('reused reads: split in two at every offset and fed byte by byte, the log is the same', () => {
  const bytes = fixture();
  const want = decodeWith(new RecordingSink(), [bytes]);
  for (let k = 0; k <= bytes.length; k++) {
    assert.deepEqual(decodeWith(new RunSink(), [bytes.subarray(0, k), bytes.subarray(k)]), want, `split at ${k}`);
  }
  const singles: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i++) singles.push(bytes.subarray(i, i + 1));
  assert.deepEqual(decodeWith(new RunSink(), singles), want);
});

test('reused reads: chunks that are views of one reused, overwritten buffer give the same log', () => {
  const bytes = fixture();
  const want = decodeWith(new RecordingSink(), [bytes]);
  for (const step of [1, 7, 1032, 1033, 3000, 9000]) {
    const cuts: number[] = [];
    for (let at = step; at < bytes.length; at += step) cuts.push(at);
    assert.deepEqual(decodeReused(new RecordingSink(), bytes, cuts), want, `every ${step} bytes`);
    assert.deepEqual(decodeReused(new RunSink(), bytes, cuts), want, `every ${step} bytes, ZERO runs`);
  }
});
