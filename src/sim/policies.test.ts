// The five free-page-hint × postcopy policies of DESIGN §2, end to end in the simulator, on
// scenarios/hint-postcopy-pressure.yaml made small (256 MiB, compact): a guest whose hinted
// blocks are held at the switch and which needs memory on the destination right after it.
// Pinned outcomes: refuse refuses with QEMU's two texts; overrule never hints; legacy breaks
// exactly invariants 3 and 4 and says so with figures; ignore-after-switch stalls the same
// (the hints that matter came before the switch) and drops hints that come after it; track
// holds every invariant, answers hinted pages with ZERO and keeps hinting's byte savings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { FREE_PAGE_HINT_POSTCOPY_REFUSAL } from '../devices/balloon/postcopy-policy.ts';
import { comparePolicies, compareText, postcopyCell, savingsKept } from './compare.ts';
import { summaryText } from './report.ts';
import { runScenario } from './runner.ts';
import { loadScenario, parseOverride, type ScenarioOverride } from './scenario/scenario.ts';
import { TraceWriter } from './trace.ts';
import type { SimRunResult } from './world-report.ts';

const TEXT = readFileSync(new URL('../../scenarios/hint-postcopy-pressure.yaml', import.meta.url), 'utf8');
const SMALL = ['guest.memory=256M', 'guest.backing=compact', 'workload.used=128M', 'workload.rate=128M', 'pressure.size=64M', 'migration.start=1500ms'];

function sets(list: readonly string[]): ScenarioOverride[] {
  return list.map((s) => parseOverride(s)!);
}

function run(policy: string, extra: readonly string[] = [], trace?: TraceWriter): SimRunResult {
  return runScenario(loadScenario(TEXT, sets([...SMALL, `devices.balloon.free-page-hint-postcopy=${policy}`, ...extra])), { trace });
}

function failed(result: SimRunResult): string[] {
  return result.verdicts.filter((v) => !v.ok).map((v) => v.name);
}

function verdict(result: SimRunResult, name: string): string {
  return result.verdicts.find((v) => v.name === name)!.detail;
}

test('refuse: the destination probe vetoes with the seed patch\'s line, and QMP says "Postcopy is not supported"', () => {
  const r = run('refuse');
  assert.equal(r.endReason, 'refused');
  assert.equal(r.status, 'none');
  assert.deepEqual(r.refusal, { errorClass: 'GenericError', desc: 'Postcopy is not supported', reports: [FREE_PAGE_HINT_POSTCOPY_REFUSAL] });
  assert.equal(FREE_PAGE_HINT_POSTCOPY_REFUSAL, "virtio-balloon: 'free-page-hint' does not support postcopy");
  assert.equal(r.errorText, "virtio-balloon: 'free-page-hint' does not support postcopy; Postcopy is not supported");
  assert.equal(postcopyCell(r), 'no (refused)');
  const text = summaryText(r);
  assert.match(text, /destination stderr: virtio-balloon: 'free-page-hint' does not support postcopy\n/);
  assert.match(text, /migrate-set-capabilities postcopy-ram: GenericError "Postcopy is not supported"\n/);
  // Only with free-page-hint on, and only when postcopy-ram is asked for.
  assert.equal(run('refuse', ['devices.balloon.free-page-hint=false']).refusal, null);
  const precopy = run('refuse', ['capabilities.postcopy-ram=false', 'switch.postcopy=null', 'pressure=null', 'parameters.downtime-limit=300']);
  assert.equal(precopy.refusal, null);
  assert.equal(precopy.status, 'completed');
  assert.ok(precopy.balloon.hintedPages > 0 && precopy.balloon.doneDelivered, 'plain precopy still hints');
});

test('overrule: no hinting while postcopy-ram is on; postcopy works', () => {
  const r = run('overrule');
  assert.ok(r.ok, failed(r).join());
  assert.equal(r.balloon.hintedPages, 0);
  assert.ok(r.postcopy.switched);
});

test('legacy: both 2021 bugs, with figures: hinted memory held (invariant 4) and a stall until postcopy ends (invariant 3)', () => {
  const trace = new TraceWriter({ keepLines: true });
  const r = run('legacy', [], trace);
  assert.ok(r.postcopy.switched && r.status === 'completed');
  assert.deepEqual(failed(r), ['stall-bound', 'hint-recovery']);
  assert.ok(r.balloon.heldAfterMigrationBytes >= 16 << 20, `held ${r.balloon.heldAfterMigrationBytes}`);
  assert.equal(r.balloon.doneDelivered, false);
  assert.match(verdict(r, 'hint-recovery'), /DONE never reached the guest driver; the guest still holds \d+\.\d+ MiB of hinted memory; .*\(expected: legacy/);
  // The faulting vCPU waits for the end of postcopy, then reads a zero page.
  assert.ok(r.postcopy.faultsOnHinted > 0 && r.postcopy.requestsDropped > 0);
  assert.ok(r.postcopy.maxStallNs > 10 * r.postcopy.stallBoundNs, `stall ${r.postcopy.maxStallNs} ns`);
  const events = trace.text().trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  const end = events.find((e) => e.ev === 'status' && e.side === 'destination' && e.to === 'completed')!;
  const released = events.filter((e) => e.ev === 'page-ready' && e.t === end.t);
  assert.ok(released.some((e) => e.waited === r.postcopy.maxStallNs), 'the longest stall ends when postcopy ends');
  assert.ok(events.some((e) => e.ev === 'mark' && e.name === 'fault-released-at-end'), 'the page was never sent: the vCPU reads a zero page');
  assert.match(verdict(r, 'stall-bound'), /longest stall \d+\.\d{3} ms over \d+ faults, bound \d+\.\d{3} ms: page \d+ stalled too long \(expected: the legacy policy/);
  assert.equal(r.postcopy.hintedZeroPages, 0);
});

test('ignore-after-switch: hints taken before the switch still stall; hints after it are dropped', () => {
  const r = run('ignore-after-switch');
  assert.deepEqual(failed(r), ['stall-bound', 'hint-recovery']);
  assert.ok(r.postcopy.faultsOnHinted > 0);
  // A hint round still running when the source goes postcopy-active (a paced driver, vm_stop
  // 8 ms later): legacy applies the late hint, ignore-after-switch drops it.
  const window = ['devices.balloon.hint-pace.block=5ms', 'migration.stop-latency=8ms', 'switch.postcopy.at=1ms', 'parameters.max-bandwidth=1G'];
  const legacy = run('legacy', window);
  const ignore = run('ignore-after-switch', window);
  assert.ok(legacy.balloon.hintsAfterSwitch > 0, 'a hint reached the source after postcopy-active');
  assert.equal(ignore.balloon.hintsAfterSwitch, legacy.balloon.hintsAfterSwitch);
  assert.ok(ignore.balloon.hintedPages < legacy.balloon.hintedPages, `${ignore.balloon.hintedPages} < ${legacy.balloon.hintedPages}`);
});

test('track: every invariant holds; hinted never-sent pages are answered once with ZERO; DONE travels', () => {
  const r = run('track');
  assert.ok(r.ok, failed(r).join());
  assert.ok(r.postcopy.switched && r.balloon.hintedPages > 0);
  assert.ok(r.postcopy.faultsOnHinted > 0 && r.postcopy.hintedZeroPages > 0, 'the destination touched hinted pages and got zero pages');
  assert.ok(r.postcopy.hintedZeroPages <= r.postcopy.faultsOnHinted);
  assert.ok(r.balloon.doneDelivered && r.balloon.heldAfterMigrationBytes === 0);
  assert.ok(r.postcopy.maxStallNs <= r.postcopy.stallBoundNs);
  assert.match(verdict(r, 'postcopy-placement'), /no page placed twice/);
});

test('compare: one row per policy; track keeps at least 90% of hinting\'s byte savings', () => {
  const rows = comparePolicies({ text: TEXT, overrides: sets(SMALL) });
  assert.deepEqual(rows.map((r) => r.policy), ['refuse', 'overrule', 'legacy', 'ignore-after-switch', 'track']);
  const kept = savingsKept(rows, 'track');
  assert.ok(kept !== null && kept >= 0.9, `track keeps ${kept}`);
  const text = compareText(rows);
  assert.match(text, /^refuse +no \(refused\) /m);
  assert.match(text, /^track +yes, switched .* ok +ok +ok +ok +n\/a +ok +n\/a$/m);
  assert.match(text, /^legacy +yes, switched .* ok +ok +FAIL +FAIL +n\/a +ok +n\/a$/m);
  assert.match(text, /refuse: destination stderr "virtio-balloon: 'free-page-hint' does not support postcopy"; migrate-set-capabilities postcopy-ram: GenericError "Postcopy is not supported"/);
});
