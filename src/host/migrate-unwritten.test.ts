// The source sends pages never written since boot as ZERO records without reading them
// (memory/written-pages.ts). Each test here puts content into RAM by one writer that bypasses
// or empties the live dirty log, migrates, and compares the destination byte for byte with the
// content expected; a writer missing from the written map would arrive as zeros.
// - a memory-backend-file's content (loaded into RAM at start, past the dirty log);
// - a VM that was itself a migration destination (pages placed by the engine), migrated on;
// - vCPU writes fetched by an earlier, cancelled migration's syncs (no longer in the log).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import { compareRam, oracleChecks, sleep, startVm, waitFor } from './vm.test-util.ts';
import type { LivemigVm } from './vm.ts';

const SIZE_BYTES = 32 * 1024 * 1024;
const MACHINE = ['-M', 'none,memory-backend=mem'];
const RAM_BACKEND = ['-object', `memory-backend-ram,id=mem,size=${SIZE_BYTES}`];

/** Pages of the backend file; RAM past its end reads as zero and is never written. */
const FILE_PAGES = 5001;

/** 32 MiB, all zero but for a few pages at word and run edges (one holds a single byte). */
function sparseImage(): Uint8Array {
  const image = new Uint8Array(SIZE_BYTES);
  for (const page of [0, 1, 31, 32, 33, 1000, 4095, 4096, 4999]) {
    for (let i = 0; i < TARGET_PAGE_SIZE; i += 64) image[page * TARGET_PAGE_SIZE + i] = ((page * 7 + i) & 0xff) | 1;
  }
  image[5000 * TARGET_PAGE_SIZE + TARGET_PAGE_SIZE - 1] = 0x5a;
  return image;
}

/** Migrates `from` to `to` (listening) and waits until both sides completed. */
async function migrate(from: LivemigVm, to: LivemigVm): Promise<void> {
  from.migrateSetParameters({ maxBandwidthBytesPerSec: 10n * 1024n ** 3n });
  from.migrate({ uri: to.incoming!.uri });
  assert.equal(await from.outgoing!.whenFinished(), 'completed', from.outgoing!.error?.message);
  await waitFor(() => to.incoming?.status === 'completed', 10_000, 'the destination to complete');
}

/** The index of the first byte where `ram` differs from `expected`, or -1. */
function firstDifference(ram: Uint8Array, expected: Uint8Array): number {
  if (Buffer.compare(ram, expected) === 0) return -1;
  for (let i = 0; i < expected.length; i++) if (ram[i] !== expected[i]) return i;
  return -1;
}

test('file-backed RAM, migrated in and then migrated on, arrives byte for byte', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'livemig-unwritten-'));
  const vms: LivemigVm[] = [];
  try {
    const image = sparseImage();
    const path = join(dir, 'ram.img');
    writeFileSync(path, image.subarray(0, FILE_PAGES * TARGET_PAGE_SIZE));
    const { vm: source } = await startVm([...MACHINE, '-object', `memory-backend-file,id=mem,size=${SIZE_BYTES},mem-path=${path}`]);
    vms.push(source);
    const { vm: middle } = await startVm([...MACHINE, ...RAM_BACKEND, '-incoming', 'tcp:127.0.0.1:0']);
    vms.push(middle);
    await migrate(source, middle);
    assert.equal(firstDifference(middle.machine.backing.bytes, image), -1, 'first hop');
    const written = source.machine.written;
    assert.equal(written.writtenRun(0, 8192), FILE_PAGES, 'the file\'s pages are marked written, the rest not');

    const { vm: last } = await startVm([...MACHINE, ...RAM_BACKEND, '-incoming', 'tcp:127.0.0.1:0']);
    vms.push(last);
    await migrate(middle, last);
    assert.equal(firstDifference(last.machine.backing.bytes, image), -1, 'second hop, from a VM that was itself a destination');
    const ram = middle.queryMigrate().ram!;
    assert.equal(ram.normal, 10, 'the pages with content went as PAGE records');
  } finally {
    await Promise.all(vms.map((vm) => vm.close()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pages fetched by a cancelled migration are still sent by the next one', async () => {
  const guest = ['-m', '64M', '--vcpus', '2', '--workload', 'incrementer:16M:64M', '--seed', '5'];
  const { vm: source } = await startVm(guest);
  const { vm: first } = await startVm([...guest, '-S', '-incoming', 'tcp:127.0.0.1:0']);
  const { vm: second } = await startVm([...guest, '-S', '-incoming', 'tcp:127.0.0.1:0']);
  try {
    await waitFor(() => source.vcpus!.totalPageWrites() > 4096, 10_000, 'the guest to write');
    // Stopped: everything written so far is in the log, and the first migration's setup sync
    // fetches it all; nothing writes after that.
    source.stop();
    assert.ok(source.machine.dirtyLog.count() > 0);
    source.migrateSetParameters({ maxBandwidthBytesPerSec: 1024n * 1024n });
    source.migrate({ uri: first.incoming!.uri });
    await waitFor(() => source.outgoing!.status === 'active', 5000, 'active');
    source.migrateCancel();
    assert.equal(await source.outgoing!.whenFinished(), 'cancelled');
    assert.equal(source.machine.dirtyLog.count(), 0, 'the cancelled migration fetched the whole log');
    await migrate(source, second);
    const same = compareRam(source.machine.backing, second.machine.backing);
    assert.equal(same.mismatchCount, 0, `pages differ: ${same.mismatches.join(',')}`);
    for (const check of oracleChecks(second)) assert.ok(check.ok, check.detail);
  } finally {
    await Promise.all([source.close(), first.close(), second.close()]);
  }
});

test('a running guest migrated twice keeps every page', async () => {
  const guest = ['-m', '64M', '--vcpus', '2', '--workload', 'incrementer:16M:64M', '--seed', '9'];
  const { vm: source } = await startVm(guest);
  const { vm: middle } = await startVm([...guest, '-incoming', 'tcp:127.0.0.1:0']);
  const { vm: last } = await startVm([...guest, '-S', '-incoming', 'tcp:127.0.0.1:0']);
  try {
    await sleep(100);
    await migrate(source, middle);
    // The middle VM runs the guest (postcopy off: nothing placed after completion), then moves on.
    await waitFor(() => middle.runState === 'running', 5000, 'the middle VM to run');
    const writes = middle.vcpus!.totalPageWrites();
    await waitFor(() => middle.vcpus!.totalPageWrites() > writes + 1024, 10_000, 'the middle guest to write');
    await migrate(middle, last);
    const same = compareRam(middle.machine.backing, last.machine.backing);
    assert.equal(same.mismatchCount, 0, `pages differ: ${same.mismatches.join(',')}`);
    for (const check of oracleChecks(last)) assert.ok(check.ok, check.detail);
  } finally {
    await Promise.all([source.close(), middle.close(), last.close()]);
  }
});
