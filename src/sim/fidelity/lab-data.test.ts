// The guest's derived figures from the committed lab runs (testdata/guest-lab/*.jsonl): the
// unhintable free memory (least MemFree of the init_on_alloc=1 alloc runs at 128 MiB/s) and,
// for the init_on_alloc=0 alloc guest, the alloc data left in it (normal pages beyond the idle
// guest's, docs/fidelity.md fifth round). Oracles: the per-run figures in the jsonl files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { advisedDeviceLoadMs, balloonLoadMs, LAB_DATA_DIR, LAB_DATA_FILES, LAB_DESTINATION_TRACE_FILE, LOW_ZERO_END_PAGE, lowZeroPages, parseJsonl, parseLabJsonl, unhintableAllocDataKb, unhintableFreeKb, zeroPagesBelow, type DestinationLoadRecord, type LabRow, type ZeroLayoutRecord } from './lab-data.ts';
import { HOST_ADVISED_DEVICE_LOAD_NS } from '../calibration-host.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const rowsOf = (file: string): LabRow[] => parseLabJsonl(readFileSync(join(ROOT, LAB_DATA_DIR, file), 'utf8'));
const all = LAB_DATA_FILES.flatMap(rowsOf);

test('the init_on_alloc=0 alloc guest left 11,319 pages of alloc data unhinted (33,331 − 22,012 normal pages, medians)', () => {
  assert.equal(unhintableAllocDataKb(all, 1024), (33_331 - 22_012) * 4);
  assert.equal(Math.floor(unhintableAllocDataKb(all, 1024)! / 4096) * 4, 44, 'floored to whole 4 MiB blocks: 44 MiB');
});

test('the alloc data measure needs init_on_alloc=0 runs of both workloads at 128 MiB/s', () => {
  assert.equal(unhintableAllocDataKb(all, 2048), null, 'no init_on_alloc=0 runs of the 2048 MiB guest');
  assert.equal(unhintableAllocDataKb(rowsOf('main.jsonl'), 1024), null, 'init_on_alloc=1 only');
  const noIdle = rowsOf('no-init-on-alloc.jsonl').filter((r) => r.wl !== 'idle');
  assert.equal(unhintableAllocDataKb(noIdle, 1024), null, 'no idle runs to subtract');
});

test('the least MemFree while hinting still comes from the init_on_alloc=1 runs (52.7 MiB for 1024 MiB, 80.8 MiB for 2048)', () => {
  assert.equal(unhintableFreeKb(all, 1024), 53_968);
  assert.equal(unhintableFreeKb(all, 2048), 82_768, '80.8 MiB');
});

const zeroLayout = parseJsonl<ZeroLayoutRecord>(readFileSync(join(ROOT, LAB_DATA_DIR, 'zero-layout.jsonl'), 'utf8'));

test('zero runs are counted up to the end page, a run across it in part', () => {
  assert.equal(zeroPagesBelow(['0x21000+119', '0x2fff000+4'], 12_288), 119 + 1, 'the second run starts at page 12,287');
  assert.equal(zeroPagesBelow(['0x3000000+10'], 12_288), 0);
  assert.throws(() => zeroPagesBelow(['21000+119'], 12_288), /expected 0x<address>\+<pages>/);
});

test('the zero pages no allocation reaches: 4,513 (1024 MiB) and 4,041 (2048 MiB) below 48 MiB, 4,277 for both', () => {
  const below = (mem: number) => zeroLayout.filter((r) => r.memMib === mem).map((r) => zeroPagesBelow(r.sourceZeroRuns, LOW_ZERO_END_PAGE));
  assert.equal(LOW_ZERO_END_PAGE, 12_288, '48 MiB');
  assert.deepEqual(below(1024), [4_513, 4_513]);
  assert.deepEqual(below(2048), [4_041, 4_041]);
  assert.equal(lowZeroPages(zeroLayout), 4_277);
  assert.equal(lowZeroPages([]), null);
});

const destinationRuns = parseJsonl<DestinationLoadRecord>(readFileSync(join(ROOT, LAB_DATA_DIR, LAB_DESTINATION_TRACE_FILE), 'utf8'));

test('after a postcopy advise the destination loads the virtio-balloon section in 39-43 ms, else under 1 ms: HOST_ADVISED_DEVICE_LOAD_NS', () => {
  assert.deepEqual(destinationRuns.filter((r) => r.pc).map(balloonLoadMs), [38.9, 41.4, 40.2, 42.6, 39.6, 39.6]);
  assert.deepEqual(destinationRuns.filter((r) => !r.pc).map(balloonLoadMs), [0, 0, 0]);
  // Without it the whole device state loads in 2.9-4.5 ms.
  assert.deepEqual(destinationRuns.filter((r) => !r.pc).map((r) => Math.round((r.qemu_dst_load!.devicesLoadedMs - r.qemu_dst_load!.ramLoadedMs) * 10) / 10), [2.9, 4.5, 3.4]);
  assert.equal(advisedDeviceLoadMs(destinationRuns), 39.9);
  assert.equal(HOST_ADVISED_DEVICE_LOAD_NS, advisedDeviceLoadMs(destinationRuns)! * 1e6);
  assert.equal(advisedDeviceLoadMs(destinationRuns.filter((r) => r.pc)), null);
});
