// Tests of the trace writer: FNV-1a 64 against published vectors and an independent BigInt
// formulation over TextEncoder bytes, deterministic formatting, a stable hash for the same
// records and a different one after a one-byte change, and a seeded simulation run (scheduler,
// link, trace) that hashes the same twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Fnv1a64, TraceError, TraceWriter, fnv1a64Hex, formatTraceValue } from './trace.ts';
import { Scheduler } from './scheduler.ts';
import { LinkDirection } from './link.ts';

/** FNV-1a 64 written with BigInt, straight from the definition. */
function referenceFnv(bytes: Uint8Array): string {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h.toString(16).padStart(16, '0');
}

test('FNV-1a 64 matches published vectors', () => {
  assert.equal(fnv1a64Hex(''), 'cbf29ce484222325');
  assert.equal(fnv1a64Hex('a'), 'af63dc4c8601ec8c');
  assert.equal(fnv1a64Hex('foobar'), '85944171f73967e8');
});

test('FNV-1a 64 over strings equals the reference over their UTF-8 bytes (property)', () => {
  const encoder = new TextEncoder();
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 64 }), (text) => {
      assert.equal(fnv1a64Hex(text), referenceFnv(encoder.encode(text)));
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const h = new Fnv1a64();
      h.update(bytes);
      assert.equal(h.digestHex(), referenceFnv(bytes));
    }),
  );
  assert.equal(fnv1a64Hex('\ud800x'), referenceFnv(encoder.encode('\ud800x'))); // lone surrogate → U+FFFD
});

test('values are formatted deterministically', () => {
  assert.equal(
    formatTraceValue({ t: 1500, ev: 'send', n: -0, f: 0.1, big: 18446744073709551615n, skip: undefined, a: [1, 'x', null, true], o: { z: 1, a: 2 } }),
    '{"t":1500,"ev":"send","n":0,"f":0.1,"big":18446744073709551615,"a":[1,"x",null,true],"o":{"z":1,"a":2}}',
  );
  assert.equal(formatTraceValue(1e21), '1e+21');
  assert.equal(formatTraceValue('a"b\n'), '"a\\"b\\n"');
  assert.throws(() => formatTraceValue(NaN), (e: unknown) => e instanceof TraceError && e.code === 'TRACE_NON_FINITE');
  assert.throws(() => formatTraceValue([undefined]), (e: unknown) => e instanceof TraceError && e.code === 'TRACE_BAD_VALUE');
  assert.throws(() => formatTraceValue({ d: new Map() as never }), (e: unknown) => e instanceof TraceError && e.code === 'TRACE_BAD_VALUE');
});

function writeRun(mutate = false): TraceWriter {
  const trace = new TraceWriter();
  for (let i = 0; i < 1000; i++) {
    trace.write({ t: i * 1_000_000, ev: i % 3 === 0 ? 'page' : 'sync', addr: i * 4096, status: 'active' });
  }
  trace.write({ t: 1_000_000_000, ev: 'status', status: mutate ? 'completes' : 'completed' });
  return trace;
}

test('the same records give the same hash; one changed byte changes it', () => {
  const a = writeRun();
  const b = writeRun();
  assert.equal(a.traceHash(), b.traceHash());
  assert.equal(a.lineCount, 1001);
  assert.equal(a.traceHash(), fnv1a64Hex(a.text()));
  const c = writeRun(true);
  assert.equal(a.text().length, c.text().length);
  assert.notEqual(a.traceHash(), c.traceHash());
});

test('a hash-only writer hashes the same bytes; the line bound holds', () => {
  const kept = new TraceWriter();
  const hashOnly = new TraceWriter({ keepLines: false });
  for (const w of [kept, hashOnly]) {
    w.write({ t: 1, ev: 'x' });
    w.writeLine('{"raw":true}');
  }
  assert.equal(kept.traceHash(), hashOnly.traceHash());
  assert.equal(hashOnly.text(), '');
  assert.equal(kept.text(), '{"t":1,"ev":"x"}\n{"raw":true}\n');
  const bounded = new TraceWriter({ maxLines: 1 });
  bounded.write({ a: 1 });
  assert.throws(() => bounded.write({ a: 2 }), (e: unknown) => e instanceof TraceError && e.code === 'TRACE_FULL');
  assert.throws(() => kept.writeLine('a\nb'), /newline/);
});

/** A small seeded run: random messages over a link with a stall and a cut, traced. */
function seededRun(seed: number): string {
  const scheduler = new Scheduler({ seed });
  const rng = scheduler.rng.fork();
  const trace = new TraceWriter({ keepLines: false });
  const link = new LinkDirection<number>(scheduler, 'stream', { bandwidthBytesPerSec: 125_000_000, latencyNs: 40_000, scanCostNsPerPage: 300 }, {
    deliver: (id, size, now) => trace.write({ t: now, ev: 'deliver', id, size }),
    onCut: (now, dropped) => trace.write({ t: now, ev: 'cut', dropped }),
  });
  for (let id = 0; id < 500; id++) {
    scheduler.at(rng.int(0, 50_000_000), () => {
      link.scanPages(rng.int(0, 64));
      const sent = link.send(id, rng.int(1, 65_536));
      trace.write({ t: scheduler.nowNs, ev: 'send', id, ok: sent.ok });
    });
  }
  link.stall(rng.int(0, 20_000_000), 30_000_000);
  link.cutAt(rng.int(40_000_000, 60_000_000));
  scheduler.runUntil(() => false, 100_000);
  return trace.traceHash();
}

test('a seeded simulation run is deterministic: same seed, same trace hash', () => {
  assert.equal(seededRun(7), seededRun(7));
  assert.notEqual(seededRun(7), seededRun(8));
});
