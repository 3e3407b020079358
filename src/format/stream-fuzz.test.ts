// Mutation fuzzing of the decoder with fast-check: byte flips, truncations and insertions of
// real QEMU 7.2 streams (none-16M whole, a valid cut-down pattern-16M and postcopy-4M), fed
// in random chunkings. Every outcome must be success or a FormatError (sticky on the
// decoder); no other exception, no hang, and the decoder's buffer never outgrows its input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzzRuns } from '../testing/fuzz-runs.ts';
import { readVector } from '../testing/testdata.ts';
import fc from 'fast-check';
import { FormatError } from './errors.ts';
import { StreamDecoder } from './stream-decoder.ts';
import type { DeviceSectionDecoder, StreamSink } from './stream-types.ts';

const RUNS = fuzzRuns();

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** Valid streams small enough to decode thousands of times. */
function samples(): Uint8Array[] {
  const none = readVector('qemu-7.2/none-16M.stream');
  const pattern = readVector('qemu-7.2/pattern-16M.stream');
  // Setup, the first three records of the first PART (ZERO named, two PAGE|CONTINUE), EOS and
  // footer, then QEMU's own timer, globalstate, EOF and VMDESCRIPTION.
  const patternSmall = concat([
    pattern.subarray(0, 72 + 13 + 2 * 4104),
    Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0x10, 0x7e, 0, 0, 0, 2),
    pattern.subarray(16805996),
  ]);
  const postcopy = readVector('qemu-7.2/postcopy-4M/conn0.src2dst.bin');
  // Header, commands, START; then DISCARD, PING 2, the PACKAGED switch, PING 4; then EOF.
  const postcopySmall = concat([postcopy.subarray(0, 102), postcopy.subarray(533725, 533980), postcopy.subarray(postcopy.length - 1)]);
  return [none, patternSmall, postcopySmall];
}

/** A device decoder that trusts a length field, as a VMDESCRIPTION-driven one may for buffers. */
const lengthPrefixed: DeviceSectionDecoder = {
  decode(_header, r) {
    return r.bytesView(r.be32()).length;
  },
};

const sink: StreamSink = {
  record() {},
  ramPage(_block, _offsetBytes, data) {
    if (data.length !== 4096) throw new Error('page of the wrong size');
  },
  ramZero() {},
};

type Mutation =
  | { readonly kind: 'flip'; readonly at: number; readonly value: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: readonly number[] };

/** A position, taken modulo the current length (unbiased: fast-check favours small numbers otherwise). */
const position = fc.noBias(fc.nat({ max: 2 ** 30 }));
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: position, value: fc.nat({ max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: position }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 9 }) }) },
);

/** Applies mutations; with `headBias` the positions fall in the first 400 bytes. */
function mutate(base: Uint8Array, mutations: readonly Mutation[], headBias: boolean): Uint8Array {
  let bytes: Uint8Array = base.slice();
  for (const m of mutations) {
    const span = headBias ? Math.min(bytes.length, 400) : bytes.length;
    const at = span === 0 ? 0 : m.at % (m.kind === 'flip' ? span : span + 1);
    if (m.kind === 'flip') {
      if (at < bytes.length) bytes[at] = m.value;
    } else if (m.kind === 'truncate') {
      bytes = bytes.slice(0, at);
    } else {
      bytes = concat([bytes.subarray(0, at), Uint8Array.from(m.bytes), bytes.subarray(at)]);
    }
  }
  return bytes;
}

test(`${RUNS} mutations of real streams: success or FormatError, never anything else`, () => {
  const bases = samples();
  for (const b of bases) {
    const d = new StreamDecoder(sink);
    d.push(b);
    d.end();
  }
  const outcomes = new Map<string, number>();
  fc.assert(
    fc.property(
      fc.nat({ max: bases.length - 1 }),
      fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
      fc.boolean(),
      fc.array(position, { maxLength: 4 }),
      fc.boolean(),
      (which, mutations, headBias, cutPositions, withDeviceDecoder) => {
        const input = mutate(bases[which], mutations, headBias);
        const cuts = cutPositions.map((p) => p % (input.length + 1)).sort((a, b) => a - b);
        const d = new StreamDecoder(sink, withDeviceDecoder ? { deviceDecoder: lengthPrefixed, limits: { maxDeviceSectionBytes: 4096 } } : {});
        let outcome = 'ok';
        try {
          let at = 0;
          for (const cut of [...cuts, input.length]) {
            d.push(input.subarray(at, cut));
            at = cut;
          }
          d.end();
        } catch (e) {
          if (!(e instanceof FormatError)) throw e;
          assert.equal(d.error, e);
          assert.ok(Number.isInteger(e.offset) && e.offset >= 0 && e.offset <= input.length, `offset ${e.offset} of ${input.length}`);
          outcome = e.code;
        }
        const carry = (d as unknown as { carry: Uint8Array }).carry;
        assert.ok(carry.length <= 2 * input.length + 65536, `buffer of ${carry.length} bytes for ${input.length} input bytes`);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      },
    ),
    { numRuns: RUNS },
  );
  // The mutations reach well past the header checks.
  assert.ok(outcomes.size >= 10, JSON.stringify([...outcomes]));
  assert.equal([...outcomes.values()].reduce((a, b) => a + b, 0), RUNS);
});
