// The CLI's one progress bar (progress.ts): the exact line for a sample (bar, status, pass,
// remaining, rate = query-migrate's mbps, ETA = remaining / rate), the sample of a
// query-migrate reply, and the pacing: on a terminal a redraw at most every REDRAW_MS of wall
// time (the sample is not even taken in between), elsewhere quiet unless asked for a line
// every N ms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MiB } from '../lib/units.ts';
import { CapturedIo } from './io.ts';
import { ProgressBar, progressLine, progressSampleOf, REDRAW_MS, type ProgressSample } from './progress.ts';

const HALF: ProgressSample = { status: 'active', pass: 2, remainingBytes: 512 * MiB, totalBytes: 1024 * MiB, transferredBytes: 1000e6, throughputBytesPerSec: 500e6, elapsedS: 2 };

test('progressLine: bar over the RAM handled, pass, remaining, rate and ETA', () => {
  // 4000 mbps = 500 MB/s; 512 MiB at that rate = 1.07 s.
  assert.equal(progressLine(HALF), `[${'#'.repeat(15)}${'.'.repeat(15)}] active          pass 2  remaining    512 MiB    500 MB/s  ETA 1.1 s  at 2.0 s`);
  // Before the first bandwidth window closes QEMU reports no throughput: no rate, no ETA (not
  // transferred / elapsed, which the setup's first tenths of a second make a poor guess).
  assert.equal(progressLine({ ...HALF, throughputBytesPerSec: 0, elapsedS: 0.1 }), `[${'#'.repeat(15)}${'.'.repeat(15)}] active          pass 2  remaining    512 MiB      - MB/s  ETA -  at 0.1 s`);
  assert.match(progressLine({ ...HALF, status: 'completed', remainingBytes: 0 }), /^\[#{30}\] completed {7}pass 2  remaining {8}0 B .* ETA 0\.0 s/);
});

test('progressSampleOf reads query-migrate; before RAM statistics all of RAM remains', () => {
  assert.deepEqual(progressSampleOf({ status: 'setup' }, 4096, 0.5), { status: 'setup', pass: 0, remainingBytes: 4096, totalBytes: 4096, transferredBytes: 0, throughputBytesPerSec: 0, elapsedS: 0.5 });
  const ram = { remaining: 100, transferred: 900, 'dirty-sync-count': 3, mbps: 8000 } as unknown as NonNullable<Parameters<typeof progressSampleOf>[0]['ram']>;
  assert.deepEqual(progressSampleOf({ status: 'active', ram }, 1000, 1), { status: 'active', pass: 3, remainingBytes: 100, totalBytes: 1000, transferredBytes: 900, throughputBytesPerSec: 1e9, elapsedS: 1 });
});

/** The clock field at the end of a line. */
const clock = (line: string): string => line.slice(line.lastIndexOf('at '));

function paced(tty: boolean, lineEveryMs: number | null, times: readonly number[]): { io: CapturedIo; taken: number; bar: ProgressBar } {
  const io = new CapturedIo();
  let now = 0;
  let taken = 0;
  const bar = new ProgressBar(io, { tty, lineEveryMs, wallNowMs: () => now });
  for (const t of times) {
    now = t;
    bar.update(() => {
      taken++;
      return { ...HALF, elapsedS: t / 1000 };
    });
  }
  return { io, taken, bar };
}

test('on a terminal: redrawn in place at most every REDRAW_MS, ended by finish', () => {
  const { io, taken, bar } = paced(true, null, [0, REDRAW_MS / 2, REDRAW_MS, REDRAW_MS + 1, 3 * REDRAW_MS]);
  assert.equal(taken, 3);
  assert.deepEqual(io.stdout.split('\r').slice(1).map(clock), ['at 0.0 s', 'at 0.1 s', 'at 0.3 s']);
  bar.finish({ ...HALF, status: 'completed', remainingBytes: 0 });
  assert.match(io.stdout, /\r\[#{30}\] completed .*\n$/);
  assert.equal(io.stdout.split('\n').length, 2);
});

test('not a terminal: quiet by default, or one plain line every lineEveryMs', () => {
  const quiet = paced(false, null, [0, 500, 1500]);
  assert.equal(quiet.taken, 0);
  quiet.bar.finish(HALF);
  assert.equal(quiet.io.stdout, '');
  assert.equal(quiet.bar.active, false);
  const lines = paced(false, 1000, [0, 500, 1000, 1500, 2100]);
  assert.equal(lines.taken, 3);
  assert.deepEqual(lines.io.stdout.split('\n').filter((l) => l !== '').map(clock), ['at 0.0 s', 'at 1.0 s', 'at 2.1 s']);
  assert.ok(!lines.io.stdout.includes('\r'));
});
