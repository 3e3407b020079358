// QEMU's migration trace as the lab records it. Acceptance criteria: every event of a real
// QEMU 7.2 log (m2048-idle-1g-hint-off, warm host, 2026-11-27) comes out with its numbers and
// its time relative to `migrate`; other lines are skipped; a log without time stamps still
// parses; the console lines say which way each convergence check went.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bracketedSyncsMs, destinationLoadOf, parseQemuTrace, qemuTraceLines } from './qemu-trace.ts';

// The source QEMU's log of one run (-msg timestamp=on; times shifted to start at 1795798578.305).
const LOG = [
  '4242@1795798578.305100:migration_bitmap_sync_end dirty_pages 0',
  '4242@1795798578.305200:migrate_pending pending size 2148016128 max 0 (pre = 2148016128 compat=0 post=0)',
  '4242@1795798578.356400:ram_save_iterate_big_wait big wait: 51 milliseconds, 225088 iterations',
  '4242@1795798578.356500:migrate_pending pending size 1226051584 max 0 (pre = 1226051584 compat=0 post=0)',
  '4242@1795798578.407700:ram_save_iterate_big_wait big wait: 51 milliseconds, 215104 iterations',
  '4242@1795798578.409000:migrate_transferred transferred 79744052 time_spent 104 bandwidth 766769 max_size 230030919',
  '4242@1795798578.409100:migrate_pending pending size 344981504 max 230030919 (pre = 344981504 compat=0 post=0)',
  '4242@1795798578.436000:migration_bitmap_sync_end dirty_pages 47',
  '4242@1795798578.436100:migrate_pending pending size 192512 max 230030919 (pre = 192512 compat=0 post=0)',
  '4242@1795798578.436200:migration_thread_low_pending 192512',
  'qemu-system-x86_64: warning: something unrelated',
  '4242@1795798578.436900:migration_completion_vm_stop ret 0',
  '4242@1795798578.437800:migration_bitmap_sync_end dirty_pages 47',
  '',
].join('\n');

test('a real QEMU 7.2 migration trace: every event, its numbers, its time after migrate', () => {
  const t0 = 1795798578305;
  const events = parseQemuTrace(LOG, t0);
  assert.deepEqual(events, [
    [0.1, 'sync', 0],
    [0.2, 'pending', 2148016128, 0],
    [51.4, 'big-wait', 51, 225088],
    [51.5, 'pending', 1226051584, 0],
    [102.7, 'big-wait', 51, 215104],
    [104, 'window', 79744052, 104, 766769, 230030919],
    [104.1, 'pending', 344981504, 230030919],
    [131, 'sync', 47],
    [131.1, 'pending', 192512, 230030919],
    [131.2, 'low-pending', 192512],
    [131.9, 'vm-stop', 0],
    [132.8, 'sync', 47],
  ]);
  // The window's threshold is its bandwidth (bytes per ms) times the 300 ms downtime limit.
  assert.ok(Math.abs(766769 * 300 - 230030919) < 300);
});

test('without time stamps the events parse with a null time; the console lines say iterate or complete', () => {
  const events = parseQemuTrace('migrate_pending pending size 0 max 0 (pre = 0 compat=0 post=0)\nmigrate_pending pending size 575410176 max 0 (pre = 575410176 compat=0 post=0)\n', 0);
  assert.deepEqual(events, [[null, 'pending', 0, 0], [null, 'pending', 575410176, 0]]);
  const lines = qemuTraceLines([...events, ...parseQemuTrace(LOG, 1795798578305).slice(6, 7)]);
  assert.match(lines[0], /pending 0 B, threshold 0 B \(complete\)$/);
  assert.match(lines[1], /pending 575410176 B, threshold 0 B \(iterate\)$/);
  assert.match(lines[2], /^ +104\.1 ms {2}pending 344981504 B, threshold 230030919 B \(iterate\)$/);
});

test('the syncs a trace brackets: after a closed window (guest running) and after the stop; not after an iteration', () => {
  const events = parseQemuTrace(LOG, 1795798578305);
  // The sync at 131 ms follows a check (the pass ran between): not bracketed. The one at 132.8
  // follows the stop at 131.9.
  assert.deepEqual(bracketedSyncsMs(events), { running: [], stopped: [0.9] });
  const windowed = parseQemuTrace([
    '7@100.000000:migrate_transferred transferred 107374943 time_spent 100 bandwidth 1073749 max_size 322124829',
    '7@100.000200:migration_bitmap_sync_end dirty_pages 170',
    '7@100.050000:ram_save_iterate_big_wait big wait: 51 milliseconds, 25792 iterations',
    '7@100.050300:migration_bitmap_sync_end dirty_pages 12',
  ].join('\n'), 100000);
  assert.deepEqual(bracketedSyncsMs(windowed), { running: [0.2], stopped: [] });
  assert.deepEqual(bracketedSyncsMs(parseQemuTrace('migration_bitmap_sync_end dirty_pages 1\nmigration_completion_vm_stop ret 0\nmigration_bitmap_sync_end dirty_pages 1', 0)), { running: [], stopped: [] });
});

// The destination's end of a postcopy-ram-advised precopy migration, as QEMU 7.2's log backend
// writes it (the shape of a lab run's trace, times shortened): two RAM sections, then devices.
const DESTINATION_TRACE = [
  '6393@1000.010000:vmstate_load ram, (old)',
  '6393@1000.020000:ram_load_complete exit_code 0 seq iteration 15',
  '6393@1000.021000:vmstate_load ram, (old)',
  '6393@1000.060500:ram_load_complete exit_code 0 seq iteration 16',
  '6393@1000.061000:vmstate_load timer, timer',
  '6393@1000.061100:vmstate_load cpu, cpu',
  '6393@1000.062300:vmstate_load 0000:00:1f.0/ICH9LPC, ICH9LPC',
  '6393@1000.062400:vmstate_load 0000:00:01.0/virtio-balloon, virtio-balloon',
  '6393@1000.102200:vmstate_load globalstate, globalstate',
  '6393@1000.102300:qemu_loadvm_state_post_main 0',
  '6393@1000.102500:migrate_send_rp_message 1: len 4',
].join('\n');

test('the destination load: the last RAM section, then each device section of 1 ms or more until post_main', () => {
  assert.deepEqual(destinationLoadOf(DESTINATION_TRACE, 1_000_000), {
    ramLoadedMs: 60.5,
    devicesLoadedMs: 102.3,
    slowSections: [['cpu', 1.2], ['0000:00:01.0/virtio-balloon', 39.8]],
  });
});

test('the destination load is null without post_main, without RAM, or without time stamps', () => {
  const lines = DESTINATION_TRACE.split('\n');
  assert.equal(destinationLoadOf(lines.filter((l) => !l.includes('post_main')).join('\n'), 1_000_000), null);
  assert.equal(destinationLoadOf(lines.filter((l) => !l.includes('ram_load_complete')).join('\n'), 1_000_000), null);
  assert.equal(destinationLoadOf(lines.map((l) => l.replace(/^\d+@[\d.]+:/, '')).join('\n'), 1_000_000), null);
});
