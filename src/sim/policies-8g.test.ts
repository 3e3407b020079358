// Issue [4]'s evidence at full size: `livemig compare` on scenarios/hint-idle-8g.yaml and
// scenarios/kernel-build-8g.yaml with postcopy-ram on and migrate-start-postcopy issued once the
// source's dirty-sync-count reaches 2, and a memory-hungry job (4 GiB of single pages at 8 GiB/s)
// that starts 20 ms into the migration. The job is what makes postcopy happen at all: without it
// the remaining bytes at sync 2 fit the downtime and QEMU's rule completes precopy. It also keeps
// allocating on the destination after the switch, so it takes hinted blocks back through the
// balloon's shrinker and writes pages that never left the source (bug 2).
// Pinned: legacy (and ignore-after-switch) fail exactly stall-bound and hint-recovery; track and
// overrule pass every invariant; track keeps at least 90% of hinting's byte savings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { comparePolicies, savingsKept, type CompareRow } from './compare.ts';
import { parseOverride } from './scenario/scenario.ts';

/** The command line of docs/free-page-hint-and-postcopy.md §4.1, as overrides. */
const POSTCOPY_AFTER_2_SYNCS_SETS: readonly string[] = [
  'capabilities.postcopy-ram=true',
  'switch.postcopy.after-syncs=2',
  'pressure.size=4G',
  'pressure.rate=8G',
  'pressure.start.at=20ms',
];

function compare(file: string, extra: readonly string[]): CompareRow[] {
  const text = readFileSync(new URL(`../../scenarios/${file}`, import.meta.url), 'utf8');
  return comparePolicies({ text, overrides: [...extra, ...POSTCOPY_AFTER_2_SYNCS_SETS].map((s) => parseOverride(s)!) });
}

function failing(row: CompareRow): string[] {
  return row.result.verdicts.filter((v) => !v.ok).map((v) => v.name);
}

function check(rows: readonly CompareRow[]): void {
  const by = (p: string): CompareRow => rows.find((r) => r.policy === p)!;
  assert.equal(by('refuse').result.refusal?.desc, 'Postcopy is not supported');
  for (const p of ['overrule', 'legacy', 'ignore-after-switch', 'track']) {
    assert.equal(by(p).result.postcopy.switched, true, `${p} switched to postcopy`);
    assert.equal(by(p).result.status, 'completed', p);
  }
  assert.equal(by('overrule').result.balloon.hintedPages, 0);
  assert.deepEqual(failing(by('overrule')), []);
  for (const p of ['legacy', 'ignore-after-switch']) {
    const r = by(p).result;
    assert.deepEqual(failing(by(p)), ['stall-bound', 'hint-recovery'], p);
    assert.ok(r.balloon.heldAfterMigrationBytes > 1024 * 1024 * 1024, `${p} holds ${r.balloon.heldAfterMigrationBytes}`);
    assert.ok(r.postcopy.maxStallNs > r.postcopy.stallBoundNs);
    assert.equal(r.postcopy.hintedZeroPages, 0);
  }
  const track = by('track').result;
  assert.deepEqual(failing(by('track')), []);
  assert.ok(track.postcopy.faultsOnHinted > 1000, `track faulted ${track.postcopy.faultsOnHinted} times on hinted pages`);
  assert.ok(track.postcopy.hintedZeroPages > 0 && track.postcopy.hintedZeroPages <= track.postcopy.faultsOnHinted);
  assert.ok(track.balloon.doneDelivered && track.balloon.heldAfterMigrationBytes === 0);
  const kept = savingsKept(rows, 'track');
  assert.ok(kept !== null && kept >= 0.9, `track keeps ${kept}`);
}

test('hint-idle-8g, postcopy after 2 syncs: legacy breaks exactly invariants 3 and 4, track none', () => {
  check(compare('hint-idle-8g.yaml', []));
});

test('kernel-build-8g with hinting, postcopy after 2 syncs: legacy breaks exactly invariants 3 and 4, track none', () => {
  check(compare('kernel-build-8g.yaml', ['devices.balloon.free-page-hint=true']));
});
