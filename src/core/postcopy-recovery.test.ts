// Postcopy recovery end to end (facts §3.11): a SourceEngine and a DestEngine back to back, the
// connection cut mid-postcopy at a seeded point (a random prefix of the bytes in flight arrives,
// the rest is lost), both sides paused, recovery on new connections, and the migration
// completes with RAM equal to the source's, every fault served by its page and no page placed
// twice. Over 240 seeded cut points, with and without postcopy-preempt, cuts by channel error
// and by migrate-pause on either side, and cuts of the recovery connection itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkStatusSequence } from './status.ts';
import { runPair, type CutKind, type PairRun } from './postcopy-recovery.test-util.ts';

const CUTS: readonly CutKind[] = ['channel-error', 'source-pause', 'destination-pause'];

function check(run: PairRun, label: string): void {
  const { source, dest } = run;
  assert.equal(source.status, 'completed', `${label}: source ${source.status} (${source.error?.message ?? ''})`);
  assert.equal(dest.status, 'completed', `${label}: destination ${dest.status} (${dest.lastError?.message ?? ''})`);
  assert.ok(run.cuts >= 1, `${label}: no cut happened`);
  assert.ok(Buffer.from(run.destRam.bytes).equals(Buffer.from(run.sourceRam.bytes)), `${label}: RAM differs`);
  const stats = dest.stats();
  assert.equal(stats.placedTwiceAttempts, 0, `${label}: a page arrived twice`);
  assert.deepEqual(stats.outstandingFaults, [], `${label}: vCPUs still waiting`);
  assert.equal(stats.faultsReleasedAtEnd, 0, `${label}: a fault was released by the end of postcopy, not served`);
  assert.equal(stats.missingPages, 0, `${label}: pages missing`);
  assert.equal(dest.recoveries, run.cuts, `${label}: recoveries`);
  assert.equal(source.recoveries, run.cuts, `${label}: source recoveries`);
  const src = checkStatusSequence(run.sourceStatuses, 'source', { allowRepeats: false });
  assert.ok(src.ok, `${label}: ${src.detail}`);
  const dst = checkStatusSequence(run.destStatuses, 'destination', { allowRepeats: false });
  assert.ok(dst.ok, `${label}: ${dst.detail}`);
  assert.ok(run.sourceStatuses.includes('postcopy-recover') && run.destStatuses.includes('postcopy-recover'), label);
}

test('postcopy recovery: 240 seeded cuts mid-postcopy, each recovered to a complete, exact migration', () => {
  let faultsAcrossCut = 0;
  let doubleCuts = 0;
  let lostPages = 0;
  let runsWithLoss = 0;
  for (let seed = 1; seed <= 240; seed++) {
    const options = { seed, preempt: seed % 2 === 0, cut: CUTS[seed % 3], doubleCut: seed % 5 === 0 };
    const run = runPair(options);
    check(run, `seed ${seed} ${JSON.stringify(options)}`);
    faultsAcrossCut += run.faultsAcrossCut;
    assert.ok(run.pagesLostAtCuts >= 0, `seed ${seed}: the destination has pages the source still counts dirty`);
    lostPages += run.pagesLostAtCuts;
    if (run.pagesLostAtCuts > 0) runsWithLoss++;
    if (run.cuts === 2) doubleCuts++;
  }
  // The runs exercised what they are for: pages written but lost with the connection (sent
  // again, once), vCPUs blocked across a cut, and recoveries cut again.
  assert.ok(runsWithLoss > 100 && lostPages > 200, `${runsWithLoss} runs lost ${lostPages} pages in flight`);
  assert.ok(faultsAcrossCut > 20, `${faultsAcrossCut} faults waited across a cut`);
  assert.ok(doubleCuts >= 40, `${doubleCuts} recoveries cut again`);
});

test('postcopy recovery: the statuses go through paused and recover on both sides, in QEMU\'s order', () => {
  const run = runPair({ seed: 7, preempt: false, cut: 'channel-error', doubleCut: false });
  check(run, 'seed 7');
  assert.deepEqual(run.sourceStatuses, ['none', 'setup', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'postcopy-active', 'completed']);
  assert.deepEqual(run.destStatuses, ['none', 'active', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'postcopy-active', 'completed']);
  const twice = runPair({ seed: 10, preempt: true, cut: 'destination-pause', doubleCut: true });
  check(twice, 'seed 10');
  assert.equal(twice.cuts, 2);
  assert.deepEqual(twice.destStatuses.slice(2, 7), ['postcopy-active', 'postcopy-paused', 'postcopy-recover', 'postcopy-paused', 'postcopy-recover']);
});
