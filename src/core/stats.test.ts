// Tests of MigrationStats accounting and query-migrate presence rules (facts §9.3), byte
// attribution by phase, timing fields, a completed precopy reproducing QEMU 7.2's recorded
// reply, and the destination's reply with blocktime members.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MigrationStatsAccumulator, mergeQueryMigrate, toDestinationQueryMigrate, transferPhase } from './stats.ts';
import { MIGRATION_STATUSES, type MigrationStatus } from './status.ts';

const MS = 1_000_000;
const RAM_KEYS = ['total', 'postcopy-requests', 'dirty-sync-count', 'multifd-bytes', 'pages-per-second', 'downtime-bytes', 'page-size',
  'remaining', 'postcopy-bytes', 'mbps', 'transferred', 'dirty-sync-missed-zero-copy', 'precopy-bytes', 'duplicate',
  'dirty-pages-rate', 'skipped', 'normal-bytes', 'normal'];

function running(): MigrationStatsAccumulator {
  const stats = new MigrationStatsAccumulator();
  stats.begin(10 * MS, 16 * 1024 * 1024, 300);
  stats.markSetupDone(12 * MS);
  stats.addNormalPages(100);
  stats.addTransferred(100 * 4104, 'precopy');
  stats.remainingBytes = 4096 * 900;
  stats.dirtyPagesRate = 42;
  return stats;
}

test('presence rules per source status', () => {
  const stats = running();
  const keys = (status: MigrationStatus) => Object.keys(stats.toQueryMigrate(status, 1510 * MS));
  const inProgress = ['expected-downtime', 'status', 'setup-time', 'total-time', 'ram'];
  for (const status of ['active', 'cancelling', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'pre-switchover', 'device'] as const) {
    assert.deepEqual(keys(status), inProgress, status);
  }
  assert.deepEqual(keys('none'), []);
  assert.deepEqual(keys('setup'), ['status']);
  for (const status of ['cancelled', 'wait-unplug', 'colo', 'failed'] as const) assert.deepEqual(keys(status), ['status'], status);
  stats.fail("Failed to connect to '127.0.0.1:51773': Connection refused");
  assert.deepEqual(stats.toQueryMigrate('failed', 0), { status: 'failed', 'error-desc': "Failed to connect to '127.0.0.1:51773': Connection refused" });
  // Every status is covered by exactly one rule above or by completed below.
  assert.equal(MIGRATION_STATUSES.length, 14);
});

test('an active reply carries elapsed time, the limit as expected downtime and all 18 ram members', () => {
  const stats = running();
  const info = stats.toQueryMigrate('active', 1510 * MS);
  assert.equal(info['total-time'], 1500);
  assert.equal(info['setup-time'], 2);
  assert.equal(info['expected-downtime'], 300);
  assert.deepEqual(Object.keys(info.ram ?? {}), RAM_KEYS);
  assert.equal(info.ram?.remaining, 4096 * 900);
  assert.equal(info.ram?.['dirty-pages-rate'], 42);
  assert.equal(info.ram?.['normal-bytes'], 409600);
  assert.equal(info.ram?.skipped, 0);
  assert.equal(info['cpu-throttle-percentage'], undefined);
  stats.cpuThrottlePct = 30;
  assert.equal(stats.toQueryMigrate('active', 1510 * MS)['cpu-throttle-percentage'], 30);
  stats.blockedReasons = ['device x is not migratable'];
  assert.deepEqual(stats.toQueryMigrate('none', 0), { 'blocked-reasons': ['device x is not migratable'] });
});

test('bytes are attributed by phase like ram_transferred_add', () => {
  assert.equal(transferPhase(true, false), 'precopy');
  assert.equal(transferPhase(false, false), 'downtime');
  assert.equal(transferPhase(false, true), 'postcopy');
  const stats = new MigrationStatsAccumulator();
  stats.begin(0, 0, 300);
  stats.addTransferred(100, 'precopy');
  stats.addTransferred(20, 'downtime');
  stats.addTransferred(3, 'postcopy');
  const ram = stats.toStats('active');
  assert.deepEqual([ram.transferred, ram['precopy-bytes'], ram['downtime-bytes'], ram['postcopy-bytes']], [123, 100, 20, 3]);
});

test('a completed precopy reproduces QEMU 7.2 query-migrate (-M none -m 16M)', () => {
  const stats = new MigrationStatsAccumulator();
  stats.begin(1_000 * MS + 300_000, 16777216, 300);
  stats.markSetupDone(1_000 * MS + 900_000);
  stats.recordDirtySync();
  stats.addZeroPages(4096);
  stats.addTransferred(36876, 'precopy');
  stats.recordDirtySync();
  stats.markDowntimeStart(1_005 * MS + 100);
  stats.complete(1_005 * MS + 700_000, 37645);
  assert.deepEqual(stats.toQueryMigrate('completed', 2_000 * MS), {
    status: 'completed', 'setup-time': 0, downtime: 0, 'total-time': 5,
    ram: {
      total: 16777216, 'postcopy-requests': 0, 'dirty-sync-count': 2, 'multifd-bytes': 0, 'pages-per-second': 0,
      'downtime-bytes': 0, 'page-size': 4096, remaining: 0, 'postcopy-bytes': 0, mbps: 60.232, transferred: 36876,
      'dirty-sync-missed-zero-copy': 0, 'precopy-bytes': 36876, duplicate: 4096, 'dirty-pages-rate': 0, skipped: 0,
      'normal-bytes': 0, normal: 0,
    },
  });
});

test('completed zeroes remaining and the dirty rate; postcopy downtime is taken at the switch', () => {
  const stats = running();
  stats.markDowntimeStart(800 * MS);
  stats.markPostcopyDowntimeEnd(830 * MS + 999_999);
  stats.addTransferred(4096, 'postcopy');
  stats.complete(2000 * MS, 5_000_000);
  const info = stats.toQueryMigrate('completed', 9999 * MS);
  assert.equal(info.downtime, 30);
  assert.equal(info['total-time'], 1990);
  assert.equal(info['expected-downtime'], undefined);
  assert.equal(info.ram?.remaining, 0);
  assert.equal(info.ram?.['dirty-pages-rate'], 0);
  assert.equal(info.ram?.mbps, (5_000_000 * 8) / (1990 - 2) / 1000);
});

test('bandwidth samples feed mbps, pages-per-second (truncated) and expected downtime', () => {
  const stats = running();
  stats.applyBandwidthSample({ transferredBytes: 0, timeSpentMs: 100, bandwidthBytesPerMs: 0, thresholdBytes: 0, mbps: 33.8184, pagesPerSecond: 1030.9, expectedDowntimeMs: null });
  let info = stats.toQueryMigrate('active', 20 * MS);
  assert.deepEqual([info.ram?.mbps, info.ram?.['pages-per-second'], info['expected-downtime']], [33.8184, 1030, 300]);
  stats.applyBandwidthSample({ transferredBytes: 0, timeSpentMs: 100, bandwidthBytesPerMs: 0, thresholdBytes: 0, mbps: 1, pagesPerSecond: 1, expectedDowntimeMs: 123 });
  info = stats.toQueryMigrate('active', 20 * MS);
  assert.equal(info['expected-downtime'], 123);
});

test('destination query-migrate shows blocktime only once completed', () => {
  const bt = { 'postcopy-blocktime': 30, 'postcopy-vcpu-blocktime': [40, 50] };
  assert.deepEqual(toDestinationQueryMigrate('none'), {});
  assert.deepEqual(toDestinationQueryMigrate('postcopy-active', { blocktime: bt }), { status: 'postcopy-active' });
  assert.deepEqual(toDestinationQueryMigrate('completed', { blocktime: bt }), { status: 'completed', ...bt });
  assert.deepEqual(toDestinationQueryMigrate('completed'), { status: 'completed' });
  const source = new MigrationStatsAccumulator();
  assert.deepEqual(mergeQueryMigrate(toDestinationQueryMigrate('active'), source.toQueryMigrate('none', 0)), { status: 'active' });
});
