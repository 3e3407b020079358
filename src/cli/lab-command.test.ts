// `npm run lab` argument handling that needs no QEMU: lab case ids parse to their knobs, and a
// bad option or case id is a usage error (exit 2) before anything is built.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LAB_CASE, parseCaseId, runLabCommand } from './lab-command.ts';

test('lab case ids', () => {
  assert.deepEqual(parseCaseId(DEFAULT_LAB_CASE), { memMib: 1024, wl: 'alloc', bw: '128m', hint: true, pc: false, initOnAlloc: true });
  assert.deepEqual(parseCaseId('m2048-idle-1g-hint-off-pc-ioa0'), { memMib: 2048, wl: 'idle', bw: '1g', hint: false, pc: true, initOnAlloc: false });
  assert.equal(parseCaseId('m1024-alloc-3g-hint-on'), null);
  assert.equal(parseCaseId('alloc'), null);
});

test('bad arguments exit 2 before measuring', async () => {
  const errors: string[] = [];
  const original = console.error;
  console.error = (...a: unknown[]) => { errors.push(a.join(' ')); };
  try {
    assert.equal(await runLabCommand(['--case', 'nope'], { root: '.' }), 2);
    assert.equal(await runLabCommand(['--frobnicate'], { root: '.' }), 2);
    assert.equal(await runLabCommand(['--accel', 'kvm'], { root: '.' }), 2);
    assert.equal(await runLabCommand(['--unaligned-ram'], { root: '.' }), 2);
    assert.equal(await runLabCommand(['--hint-stale', '--accel', 'hvf'], { root: '.' }), 2);
    assert.equal(await runLabCommand(['--host-memory', 'lukewarm'], { root: '.' }), 2);
    assert.equal(await runLabCommand(['--host-probe', '--case', DEFAULT_LAB_CASE], { root: '.' }), 2);
    assert.equal(await runLabCommand(['--host-probe', '--reps', '0'], { root: '.' }), 2);
    assert.equal(await runLabCommand(['--hint-stale', '--trace-migration'], { root: '.' }), 2);
    assert.equal(await runLabCommand(['--checks', 'm1024-idle-9g-hint-off'], { root: '.' }), 2);
    assert.equal(await runLabCommand(['--checks'], { root: '.' }), 2);
  } finally {
    console.error = original;
  }
  assert.match(errors.join('\n'), /not a lab case id/);
  assert.match(errors.join('\n'), /unknown option/);
  assert.match(errors.join('\n'), /--accel and --unaligned-ram are options of --hint-stale/);
  assert.match(errors.join('\n'), /--accel hvf: tcg or kvm/);
  assert.match(errors.join('\n'), /--host-memory lukewarm: as-is or warm/);
  assert.match(errors.join('\n'), /--host-probe takes only --reps/);
  assert.match(errors.join('\n'), /--reps: a positive integer/);
  assert.match(errors.join('\n'), /--trace-migration is not an option of --hint-stale/);
  assert.match(errors.join('\n'), /--checks takes one lab case id/);
});

test('--checks prints the simulator\'s convergence checks, then QEMU\'s for each traced run of the case', async () => {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(' '));
  let code: number;
  try {
    code = await runLabCommand(['--checks', 'm2048-idle-1g-hint-off', '--warm'], { root: new URL('../../', import.meta.url).pathname });
  } finally {
    console.log = original;
  }
  assert.equal(code, 0);
  const out = lines.join('\n');
  assert.match(out, /^the simulator, scenarios\/lab\/warm-host\/m2048-idle-1g-hint-off\.yaml:/);
  assert.match(out, /pending \d+ B is below the threshold: complete/);
  // The three traced runs, each with QEMU's first window and its completion.
  assert.equal((out.match(/^QEMU 7\.2, testdata\/guest-lab\/trace-warm\.jsonl rep \d/gm) ?? []).length, 3);
  assert.equal((out.match(/window closed: \d+ B in 10\d ms/g) ?? []).length, 3);
});
