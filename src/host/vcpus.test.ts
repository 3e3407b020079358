// Tests for the vCPU worker threads. (1) Two incrementer vCPUs over a 32 MiB guest run, then
// pause: after the synchronous pause nothing changes any more, every written page is in the
// dirty log, and each vCPU's region passes the incrementer oracle with the edge exactly at the
// cursor it saved in the vCPU state page. (2) Postcopy trapping: with pages missing from the
// present map, a vCPU reports a fault and blocks until the main thread places the page and
// wakes it; the wait is recorded as a fault latency. (3) Throttling slows the page-write rate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bitmap } from '../lib/bitmap.ts';
import { MiB, TARGET_PAGE_SIZE } from '../lib/units.ts';
import { BytesBacking } from '../memory/bytes-backing.ts';
import { DirtyLog } from '../memory/dirty-log.ts';
import { ReceivedMap } from '../memory/received-map.ts';
import { checkIncrementer } from '../guest/oracle.ts';
import { buildGuest, planVcpus } from './guest-plan.ts';
import { VCPU_STATE_PAGE, VCPU_STATE_SLOT_BYTES } from './vcpu-control.ts';
import { regionPage, threadNice, type VcpuPlan } from './vcpu-worker.ts';
import { VcpuSet } from './vcpus.ts';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function machine(sizeBytes: number) {
  const backing = new BytesBacking(sizeBytes, { shared: true });
  const log = new DirtyLog(backing.pageCount);
  const received = new ReceivedMap(backing.pageCount);
  const guest = buildGuest({ backing, dirtyLog: log, seed: 7 });
  return { backing, log, received, guest };
}

function savedCursor(backing: BytesBacking, vcpu: number): number {
  return backing.readLe32(VCPU_STATE_PAGE * TARGET_PAGE_SIZE + vcpu * VCPU_STATE_SLOT_BYTES + 4);
}

function checkRegion(backing: BytesBacking, plan: VcpuPlan, vcpu: number) {
  return checkIncrementer((i) => backing.bytes[regionPage(plan, i) * TARGET_PAGE_SIZE], plan.pageCount, { expectedEdgeIndex: savedCursor(backing, vcpu) });
}

test('incrementer vCPUs write, mark the dirty log, and stop writing once paused', async () => {
  const m = machine(32 * MiB);
  const plans = planVcpus(m.guest, { kind: 'incrementer', sizeBytes: 8 * MiB, rateBytesPerS: 64 * MiB }, 2, 1);
  const set = await VcpuSet.start({
    memory: m.backing.buffer as SharedArrayBuffer, dirtyLog: m.log.buffer, received: m.received.buffer, pageCount: m.backing.pageCount,
    epochNs: process.hrtime.bigint(), plans, onFault: () => assert.fail('no fault without trapping'), onWorkerError: (_v, e) => assert.fail(e),
  });
  try {
    set.run();
    await sleep(300);
    set.pause();
    const snapshot = m.backing.bytes.slice();
    const dirty = new Bitmap(m.backing.pageCount);
    m.log.sync(dirty);
    await sleep(50);
    assert.ok(Buffer.from(snapshot).equals(Buffer.from(m.backing.bytes)), 'no write after pause');
    assert.equal(m.log.count(), 0, 'no mark after pause');
    for (let vcpu = 0; vcpu < 2; vcpu++) {
      const plan = plans[vcpu];
      assert.ok(set.stats(vcpu).pageWrites > 100, `vCPU ${vcpu} wrote`);
      const check = checkRegion(m.backing, plan, vcpu);
      assert.ok(check.ok, check.detail);
      for (let i = 0; i < plan.pageCount; i++) {
        const page = regionPage(plan, i);
        if (m.backing.bytes[page * TARGET_PAGE_SIZE] !== 0) assert.ok(dirty.test(page), `written page ${page} is dirty`);
      }
    }
    assert.ok(dirty.test(VCPU_STATE_PAGE), 'the state page is dirty');
    // Resuming continues the walk from where it stopped.
    set.run();
    await sleep(100);
    set.pause();
    for (let vcpu = 0; vcpu < 2; vcpu++) assert.ok(checkRegion(m.backing, plans[vcpu], vcpu).ok);
  } finally {
    await set.close();
  }
});

test('a trapped vCPU faults on a missing page and resumes once it is placed', async () => {
  const m = machine(16 * MiB);
  const plans = planVcpus(m.guest, { kind: 'incrementer', sizeBytes: 1 * MiB, rateBytesPerS: 32 * MiB }, 1, 3);
  const plan = plans[0];
  // Everything is present except the region's pages 10.. and the state page.
  m.received.markRange(0, m.backing.pageCount);
  const faults: number[] = [];
  let set: VcpuSet | null = null;
  const fresh = new ReceivedMap(m.backing.pageCount);
  for (let p = 0; p < m.backing.pageCount; p++) if (p !== VCPU_STATE_PAGE && !(regionIndex(plan, p) >= 10)) fresh.testAndSet(p);
  set = await VcpuSet.start({
    memory: m.backing.buffer as SharedArrayBuffer, dirtyLog: m.log.buffer, received: fresh.buffer, pageCount: m.backing.pageCount,
    epochNs: process.hrtime.bigint(), plans,
    onFault: (_vcpu, page) => {
      faults.push(page);
      // The main thread "places" the page after a short delay, then wakes the vCPU.
      setTimeout(() => {
        fresh.testAndSet(page);
        set?.wakePage(page);
      }, 2);
    },
    onWorkerError: (_v, e) => assert.fail(e),
  });
  try {
    set.setTrap(true);
    set.run();
    await sleep(300);
    set.pause();
    assert.equal(faults[0], VCPU_STATE_PAGE, 'the state page is read first');
    assert.ok(faults.length >= 5, `faults: ${faults.length}`);
    assert.equal(new Set(faults).size, faults.length, 'each page faults once');
    const latencies = set.faultLatencies();
    // The last fault may still be waiting when the pause is acknowledged.
    assert.ok(latencies.length >= faults.length - 1 && latencies.length <= faults.length);
    assert.ok(latencies.every((ns) => ns >= 1_000_000), 'each wait lasted until the placement');
    assert.ok(checkRegion(m.backing, plan, 0).ok);
  } finally {
    await set.close();
  }
});

function regionIndex(plan: VcpuPlan, page: number): number {
  for (let i = 0; i < plan.pageCount; i++) if (regionPage(plan, i) === page) return i;
  return -1;
}

test('throttling cuts the page-write rate', async () => {
  const m = machine(16 * MiB);
  const plans = planVcpus(m.guest, { kind: 'random', sizeBytes: 4 * MiB, rateBytesPerS: 200 * MiB }, 1, 5);
  const set = await VcpuSet.start({
    memory: m.backing.buffer as SharedArrayBuffer, dirtyLog: m.log.buffer, received: m.received.buffer, pageCount: m.backing.pageCount,
    epochNs: process.hrtime.bigint(), plans, onFault: () => undefined, onWorkerError: (_v, e) => assert.fail(e),
  });
  try {
    set.run();
    await sleep(200);
    const a = set.totalPageWrites();
    await sleep(300);
    const free = set.totalPageWrites() - a;
    set.setThrottle(80);
    await sleep(100);
    const b = set.totalPageWrites();
    await sleep(300);
    const throttled = set.totalPageWrites() - b;
    assert.ok(throttled < free * 0.5, `throttled ${throttled} vs free ${free}`);
  } finally {
    await set.close();
  }
});

test('--vcpu-nice: each vCPU thread lowers its own priority, the main thread keeps its own', async (t) => {
  const mainNice = threadNice();
  if (mainNice === null) return t.skip('no /proc/thread-self/stat on this system');
  const m = machine(16 * MiB);
  const plans = planVcpus(m.guest, { kind: 'random', sizeBytes: 4 * MiB, rateBytesPerS: 8 * MiB }, 2, 5);
  const start = (nice?: number) => VcpuSet.start({
    memory: m.backing.buffer as SharedArrayBuffer, dirtyLog: m.log.buffer, received: m.received.buffer, pageCount: m.backing.pageCount,
    epochNs: process.hrtime.bigint(), plans, nice, onFault: () => undefined, onWorkerError: (_v, e) => assert.fail(e),
  });
  // The figures are what each worker read back from the kernel (/proc/thread-self/stat field 19).
  const lowered = await start(19);
  try {
    assert.deepEqual(lowered.threadNices, [19, 19]);
    assert.equal(threadNice(), mainNice, 'setpriority on a worker\'s tid leaves the main thread alone');
  } finally {
    await lowered.close();
  }
  const unchanged = await start();
  try {
    assert.deepEqual(unchanged.threadNices, [mainNice, mainNice]);
  } finally {
    await unchanged.close();
  }
});
