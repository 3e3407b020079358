// Encoder tests: exact bytes against the independent Fx builder, chunking, the page-run fast
// path, and a fast-check round trip encode → decode over random blocks, pages and commands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { StreamDecoder, decodeStream } from './stream-decoder.ts';
import { StreamEncoder, encodeNestedStream, encodeToBytes } from './stream-encoder.ts';
import type { Command } from './stream-types.ts';
import { Fx, RecordingSink, fnv, pageOf } from './stream-fixtures.test-util.ts';

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('encoder bytes equal the independent builder for every record kind, with QEMU CONTINUE rules', () => {
  const nested = encodeNestedStream((e) => {
    e.command({ kind: 'postcopy-listen' });
    e.timerSection(0, { cpu_ticks_offset: -1n, cpu_clock_offset: 2n });
    e.globalstateSection(4, 'running');
    e.command({ kind: 'postcopy-run' });
  });
  const ours = encodeToBytes((e) => {
    e.header();
    e.configuration({ machine: 'pc', targetPageBits: 12, capabilities: ['x-ignore-shared'], uuid: new Uint8Array(16).fill(0xab) });
    e.command({ kind: 'open-return-path' });
    e.command({ kind: 'ping', value: 1 });
    e.command({ kind: 'postcopy-advise', pageSizeSummary: 4096, targetPageSize: 4096 });
    e.sectionStart(2, 'ram', 0, 4);
    e.ramMemSize([
      { name: 'a', usedLengthBytes: 3 * 4096, gpa: 0 },
      { name: 'b', usedLengthBytes: 4096, gpa: 0x100000 },
    ]);
    e.ramEos();
    e.footer(2);
    e.sectionPart(2);
    e.ramPage('a', 0, pageOf(1));
    e.ramZero('a', 4096);
    e.ramPage('b', 0, pageOf(2));
    e.ramPage('a', 8192, pageOf(3));
    e.ramEos();
    e.footer(2);
    e.sectionPart(2);
    e.ramZero('a', 4096, 5);
    e.resetLastBlock();
    e.ramZero('a', 0);
    e.ramEos();
    e.footer(2);
    e.command({ kind: 'postcopy-ram-discard', blockName: 'a', ranges: [{ startBytes: 4096, lengthBytes: 8192 }] });
    e.packaged(nested);
    e.command({ kind: 'enable-colo' });
    e.command({ kind: 'postcopy-resume' });
    e.command({ kind: 'recv-bitmap', blockName: 'a' });
    e.command({ kind: 'postcopy-advise-empty' });
    e.sectionEnd(2);
    e.ramEos();
    e.footer(2);
    e.eof();
    e.vmdescription('{"x": 1}');
  });
  const pkg = new Fx().cmd(4).timer(0, -1n, 2n).globalstate(4, 'running').cmd(5);
  const theirs = new Fx()
    .header()
    .config('pc')
    .hex('05 1e').text('configuration/target-page-bits').be32(1).be32(12)
    .hex('05 1a').text('configuration/capabilities').be32(1).be32(1).cstr('x-ignore-shared')
    .hex('05 12').text('configuration/uuid').be32(1).bytes(new Uint8Array(16).fill(0xab))
    .cmd(1)
    .cmd(2, '00000001')
    .cmd(3, '0000000000001000 0000000000001000')
    .start(2, 'ram', 0, 4)
    .word(4 * 4096, 0x04).cstr('a').be64(3 * 4096).be64(0).cstr('b').be64(4096).be64(0x100000)
    .eos()
    .footer(2)
    .part(2)
    .page(0, 'a', pageOf(1))
    .zero(4096, null)
    .page(0, 'b', pageOf(2))
    .page(8192, 'a', pageOf(3))
    .eos()
    .footer(2)
    .part(2)
    .zero(4096, null, 5)
    .zero(0, 'a')
    .eos()
    .footer(2)
    .cmd(6, new Fx().u8(0).cstr('a').u8(0).be64(4096).be64(8192))
    .cmd(7, new Fx().be32(pkg.length))
    .bytes(pkg.build())
    .cmd(8)
    .cmd(9)
    .cmd(10, new Fx().cstr('a'))
    .cmd(3)
    .end(2)
    .eos()
    .footer(2)
    .eof()
    .vmdesc('{"x": 1}')
    .build();
  assert.equal(hexOf(ours), hexOf(theirs));
});

test('ramPages: zero detection, page runs across small chunks, unaligned buffers', () => {
  const pageCount = 40;
  const ram = new Uint8Array(pageCount * 4096 + 1).subarray(1);
  for (let i = 0; i < pageCount; i++) if (i % 7 !== 3) ram.set(pageOf(i), i * 4096);
  ram[38 * 4096 + 4095] = 1;
  for (const [buffer, chunkSizeBytes] of [
    [ram, 3 * 4096 + 700],
    [ram.slice(), 1 << 20],
  ] as const) {
    const chunks: Uint8Array[] = [];
    const e = new StreamEncoder({ onChunk: (c) => chunks.push(c), chunkSizeBytes });
    e.header();
    e.configuration({ machine: 'none' });
    e.sectionStart(2, 'ram', 0, 4);
    e.ramMemSize([{ name: 'ram', usedLengthBytes: 4 * 4096 + buffer.length }]);
    e.ramEos();
    e.footer(2);
    e.sectionPart(2);
    const counts = e.ramPages('ram', buffer, 4 * 4096);
    e.ramEos();
    e.footer(2);
    e.eof();
    e.flush();
    assert.deepEqual(counts, { zeroPages: 5, normalPages: 35 });
    for (const c of chunks) assert.ok(c.length <= chunkSizeBytes);
    const decoded = new Uint8Array(4 * 4096 + buffer.length).fill(0xee);
    const d = new StreamDecoder({
      record() {},
      ramPage: (_b, o, data) => decoded.set(data, o),
      ramZero: (_b, o, fill) => decoded.fill(fill, o, o + 4096),
    });
    for (const c of chunks) d.push(c);
    d.end();
    assert.equal(fnv(decoded.subarray(4 * 4096)), fnv(buffer));
    assert.equal(decoded[0], 0xee);
  }
});

interface Scenario {
  blocks: Array<{ name: string; pages: number }>;
  steps: Array<
    | { kind: 'part'; records: Array<{ block: number; page: number; seed: number | null; fill: number }> }
    | { kind: 'command'; command: Command }
    | { kind: 'timer'; ticks: bigint; clock: bigint }
    | { kind: 'globalstate'; runstate: string }
    | { kind: 'packaged'; pings: number[] }
  >;
}

const nameArb = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '.', '/', '0'), minLength: 1, maxLength: 12 });
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  fc.constant<Command>({ kind: 'open-return-path' }),
  fc.nat({ max: 0xffffffff }).map<Command>((value) => ({ kind: 'ping', value })),
  fc.constant<Command>({ kind: 'enable-colo' }),
  fc.constant<Command>({ kind: 'postcopy-resume' }),
  nameArb.map<Command>((blockName) => ({ kind: 'recv-bitmap', blockName })),
);

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .uniqueArray(fc.record({ name: nameArb, pages: fc.integer({ min: 1, max: 6 }) }), { minLength: 1, maxLength: 3, selector: (b) => b.name })
  .chain((blocks) => {
    const recordArb = fc.integer({ min: 0, max: blocks.length - 1 }).chain((block) =>
      fc.record({
        block: fc.constant(block),
        page: fc.integer({ min: 0, max: blocks[block].pages - 1 }),
        seed: fc.option(fc.nat({ max: 255 }), { freq: 3 }),
        fill: fc.nat({ max: 255 }),
      }),
    );
    const stepArb = fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('part' as const), records: fc.array(recordArb, { maxLength: 8 }) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('command' as const), command: commandArb }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('timer' as const), ticks: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), clock: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('globalstate' as const), runstate: fc.constantFrom('running', 'paused', 'postmigrate', '') }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('packaged' as const), pings: fc.array(fc.nat({ max: 1000 }), { maxLength: 3 }) }) },
    );
    return fc.record({ blocks: fc.constant(blocks), steps: fc.array(stepArb, { maxLength: 12 }) });
  });

/** Encodes a scenario and returns the bytes plus the log a RecordingSink should produce for it. */
function encodeScenario(s: Scenario): { bytes: Uint8Array; expected: unknown[] } {
  const expected: unknown[] = [];
  const bytes = encodeToBytes(
    (e) => {
      e.header();
      e.configuration({ machine: 'none' });
      e.sectionStart(2, 'ram', 0, 4);
      e.ramMemSize(s.blocks.map((b) => ({ name: b.name, usedLengthBytes: b.pages * 4096 })));
      e.ramEos();
      e.footer(2);
      let timerId = 10;
      for (const step of s.steps) {
        if (step.kind === 'part') {
          e.sectionPart(2);
          for (const r of step.records) {
            const name = s.blocks[r.block].name;
            const offsetBytes = r.page * 4096;
            if (r.seed === null) {
              e.ramZero(name, offsetBytes, r.fill);
              expected.push({ zero: name, index: r.block, offsetBytes, fill: r.fill });
            } else {
              e.ramPage(name, offsetBytes, pageOf(r.seed));
              expected.push({ page: name, index: r.block, offsetBytes, data: fnv(pageOf(r.seed)), lengthBytes: 4096 });
            }
          }
          e.ramEos();
          e.footer(2);
        } else if (step.kind === 'command') {
          e.command(step.command);
          expected.push({ command: step.command, depth: 0 });
        } else if (step.kind === 'timer') {
          e.timerSection(timerId++, { cpu_ticks_offset: step.ticks, cpu_clock_offset: step.clock });
          expected.push({ device: 'timer', state: { cpu_ticks_offset: `${step.ticks}n`, cpu_clock_offset: `${step.clock}n` } });
        } else if (step.kind === 'globalstate') {
          e.globalstateSection(timerId++, step.runstate);
          expected.push({ device: 'globalstate', state: { size: step.runstate.length + 1, runstate: step.runstate } });
        } else {
          const nested = encodeNestedStream((n) => {
            for (const value of step.pings) n.command({ kind: 'ping', value });
          });
          e.packaged(nested);
          expected.push({ command: { kind: 'packaged', lengthBytes: nested.length }, depth: 0 });
          for (const value of step.pings) expected.push({ command: { kind: 'ping', value }, depth: 1 });
          expected.push('packaged-end');
        }
      }
      e.sectionEnd(2);
      e.ramEos();
      e.footer(2);
      e.eof();
    },
    { chunkSizeBytes: 9000 },
  );
  return { bytes, expected };
}

/** The parts of a RecordingSink log that a scenario determines. */
function summarize(log: unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const entry of log as Array<Record<string, unknown>>) {
    if ('page' in entry || 'zero' in entry) out.push(entry);
    else if (entry.kind === 'command') out.push({ command: entry.command, depth: entry.depth });
    else if (entry.kind === 'device') out.push({ device: (entry.header as { idstr: string }).idstr, state: entry.state });
    else if (entry.kind === 'packaged-end') out.push('packaged-end');
  }
  return out;
}

test('round trip: random blocks, pages, commands, devices and packages decode to what was encoded', () => {
  fc.assert(
    fc.property(scenarioArb, fc.integer({ min: 3, max: 5000 }), (scenario, chunkBytes) => {
      const { bytes, expected } = encodeScenario(scenario);
      const whole = new RecordingSink();
      decodeStream(bytes, whole);
      assert.deepEqual(summarize(whole.log), expected);
      const chunked = new RecordingSink();
      const d = new StreamDecoder(chunked);
      for (let at = 0; at < bytes.length; at += chunkBytes) d.push(bytes.subarray(at, at + chunkBytes));
      d.end();
      assert.deepEqual(chunked.log, whole.log);
    }),
    { numRuns: 200 },
  );
});

test('round trip: a postcopy switch sequence written by the encoder', () => {
  const ram = new Uint8Array(8 * 4096);
  for (let i = 1; i < 8; i++) ram.set(pageOf(i), i * 4096);
  const pkg = encodeNestedStream((n) => {
    n.command({ kind: 'postcopy-listen' });
    n.timerSection(0, { cpu_ticks_offset: 1n, cpu_clock_offset: 2n });
    n.globalstateSection(4, 'running');
    n.command({ kind: 'ping', value: 3 });
    n.command({ kind: 'postcopy-run' });
  });
  const bytes = encodeToBytes((e) => {
    e.header();
    e.configuration({ machine: 'none' });
    e.command({ kind: 'open-return-path' });
    e.command({ kind: 'ping', value: 1 });
    e.command({ kind: 'postcopy-advise', pageSizeSummary: 4096, targetPageSize: 4096 });
    e.sectionStart(2, 'ram', 0, 4);
    e.ramMemSize([{ name: 'mem', usedLengthBytes: ram.length }]);
    e.ramEos();
    e.footer(2);
    e.sectionPart(2);
    e.ramPages('mem', ram, 0, 0, 2 * 4096);
    e.ramEos();
    e.footer(2);
    e.command({ kind: 'postcopy-ram-discard', blockName: 'mem', ranges: [{ startBytes: 2 * 4096, lengthBytes: 6 * 4096 }] });
    e.command({ kind: 'ping', value: 2 });
    e.packaged(pkg);
    e.command({ kind: 'ping', value: 4 });
    e.resetLastBlock();
    e.sectionPart(2);
    e.ramPages('mem', ram, 0, 2 * 4096);
    e.ramEos();
    e.footer(2);
    e.sectionEnd(2);
    e.ramEos();
    e.footer(2);
    e.eof();
  });
  const decoded = new Uint8Array(ram.length).fill(0xee);
  const sink = new RecordingSink();
  decodeStream(bytes, {
    record: (r) => sink.record(r),
    ramPage: (_b, o, data) => decoded.set(data, o),
    ramZero: (_b, o, fill) => decoded.fill(fill, o, o + 4096),
  });
  assert.equal(fnv(decoded), fnv(ram));
  assert.ok(sink.kinds().includes('packaged-end'));
  assert.equal(sink.kinds().filter((k) => k === 'command:postcopy-run').length, 1);
});
