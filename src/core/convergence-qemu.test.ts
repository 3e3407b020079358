// The convergence rule against real QEMU 7.2: 36 migrations of the lab's Debian guest
// (testdata/guest-lab/trace-warm.jsonl, `npm run lab -- --trace-migration --host-memory warm`;
// trace-cold.jsonl, three more of one case on a cold host),
// whose source QEMU traced every convergence check (migrate_pending: pending bytes and
// threshold), every closed bandwidth window (migrate_transferred) and every dirty sync.
// Acceptance criteria: at every check decideIteration makes QEMU's choice (complete exactly
// where QEMU traced migration_thread_low_pending); every window's threshold is thresholdBytes
// of its bandwidth to the byte; each run traced as many syncs as query-migrate's
// dirty-sync-count; the threshold stays 0 until the first window closes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { thresholdBytes } from './bandwidth.ts';
import { decideIteration } from './convergence.ts';

type TraceEvent = [number | null, string, ...number[]];
interface TracedRun {
  mem_mib: number; wl: string; bw: string; hint: boolean; status: string; dirty_sync_count: number;
  params: { 'downtime-limit': number };
  qemu_trace: TraceEvent[];
}

const read = (name: string): TracedRun[] => readFileSync(new URL(`../../testdata/guest-lab/${name}`, import.meta.url), 'utf8')
  .split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as TracedRun);
const runs = [...read('trace-warm.jsonl'), ...read('trace-cold.jsonl')];

test('the traced runs: 36 completed migrations, each with its trace', () => {
  assert.equal(runs.length, 36);
  for (const r of runs) {
    assert.equal(r.status, 'completed');
    assert.ok(r.qemu_trace.length >= 6, `${r.mem_mib} ${r.wl} ${r.bw}: ${r.qemu_trace.length} events`);
  }
});

test('at every convergence check QEMU 7.2 did what decideIteration decides', () => {
  let checks = 0;
  let completions = 0;
  for (const r of runs) {
    const events = r.qemu_trace;
    events.forEach((e, i) => {
      if (e[1] !== 'pending') return;
      const [pendingBytes, threshold] = [e[2], e[3]];
      const decision = decideIteration({ pendingPrecopyOnlyBytes: pendingBytes, pendingPostcopiableBytes: 0, thresholdBytes: threshold, postcopyRequested: false, inPostcopy: false });
      const qemuCompleted = events[i + 1]?.[1] === 'low-pending';
      assert.equal(decision, qemuCompleted ? 'complete' : 'iterate', `${r.mem_mib} ${r.wl} ${r.bw} hint=${r.hint}: pending ${pendingBytes} B, threshold ${threshold} B`);
      checks++;
      if (qemuCompleted) completions++;
    });
  }
  assert.equal(completions, runs.length, 'one completion per run');
  assert.ok(checks >= 150, `${checks} checks`);
});

test('every window\'s threshold is its bandwidth times the downtime limit; 0 before the first window', () => {
  let windows = 0;
  for (const r of runs) {
    let threshold = 0;
    for (const e of r.qemu_trace) {
      if (e[1] === 'window') {
        const [transferred, timeSpentMs, , maxSize] = e.slice(2) as number[];
        threshold = thresholdBytes(transferred / timeSpentMs, r.params['downtime-limit']);
        assert.equal(threshold, maxSize, `${r.mem_mib} ${r.wl} ${r.bw}: ${transferred} B in ${timeSpentMs} ms`);
        windows++;
      }
      if (e[1] === 'pending') assert.equal(e[3], threshold, 'the check uses the last window\'s threshold');
    }
  }
  assert.ok(windows >= 60, `${windows} windows`);
});

test('each run traced as many dirty syncs as query-migrate counted', () => {
  for (const r of runs) {
    const syncs = r.qemu_trace.filter((e) => e[1] === 'sync').length;
    assert.equal(syncs, r.dirty_sync_count, `${r.mem_mib} ${r.wl} ${r.bw} hint=${r.hint}`);
  }
});
