// Tests of the link model: delivery times computed by hand (serialization, latency, overhead,
// scan cost), stalls, bandwidth changes, cuts, independence of the two directions, and FIFO
// delivery for random traffic (fast-check).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Scheduler } from './scheduler.ts';
import { Link, LinkDirection, type LinkDirectionConfig } from './link.ts';

/** 1 byte per ns, 1 µs latency. */
const ONE_BYTE_PER_NS: LinkDirectionConfig = { bandwidthBytesPerSec: 1_000_000_000, latencyNs: 1000 };

function setup(config: LinkDirectionConfig = ONE_BYTE_PER_NS) {
  const scheduler = new Scheduler({ seed: 1 });
  const arrivals: Array<[string, number]> = [];
  const cuts: Array<[number, number]> = [];
  const link = new LinkDirection<string>(scheduler, 'test', config, {
    deliver: (payload, _size, now) => arrivals.push([payload, now]),
    onCut: (now, dropped) => cuts.push([now, dropped]),
  });
  return { scheduler, link, arrivals, cuts };
}

test('serialization then latency; messages queue behind each other', () => {
  const { scheduler, link, arrivals } = setup();
  assert.deepEqual(link.send('a', 4096), { ok: true, serializedAtNs: 4096, deliverAtNs: 5096 });
  assert.deepEqual(link.send('b', 4096), { ok: true, serializedAtNs: 8192, deliverAtNs: 9192 });
  scheduler.runUntil(10_000, 100);
  assert.deepEqual(arrivals, [['a', 5096], ['b', 9192]]);
  // A message sent after the wire went idle starts at once.
  scheduler.runUntil(20_000, 100);
  assert.deepEqual(link.send('c', 100), { ok: true, serializedAtNs: 20_100, deliverAtNs: 21_100 });
  assert.deepEqual(link.counters, { messagesSent: 3, bytesSent: 8292, messagesDelivered: 2, bytesDelivered: 8192, messagesDropped: 0 });
});

test('1 Gbit/s with 64 bytes of framing per message', () => {
  const { link } = setup({ bandwidthBytesPerSec: 125_000_000, latencyNs: 50_000, perMessageOverheadBytes: 64 });
  // (4096 + 64) bytes at 8 ns per byte = 33280 ns.
  assert.deepEqual(link.send('p', 4096), { ok: true, serializedAtNs: 33_280, deliverAtNs: 83_280 });
  // 1 byte takes 8 ns; 65 bytes (1 + 64) → 520 ns; rounding up to whole ns: 3 B/s for 1 byte.
  assert.deepEqual(link.send('q', 1), { ok: true, serializedAtNs: 33_800, deliverAtNs: 83_800 });
  const slow = setup({ bandwidthBytesPerSec: 3, latencyNs: 0 }).link;
  assert.deepEqual(slow.send('r', 1), { ok: true, serializedAtNs: 333_333_334, deliverAtNs: 333_333_334 });
});

test('scan cost delays the sender, not what is already on the wire', () => {
  const { link, scheduler, arrivals } = setup({ ...ONE_BYTE_PER_NS, scanCostNsPerPage: 500 });
  link.send('a', 4096);
  assert.equal(link.scanPages(100), 50_000); // 100 pages × 500 ns
  assert.equal(link.senderFreeAtNs(), 50_000);
  assert.deepEqual(link.send('b', 4096), { ok: true, serializedAtNs: 54_096, deliverAtNs: 55_096 });
  scheduler.runUntil(60_000, 100);
  assert.deepEqual(arrivals, [['a', 5096], ['b', 55_096]]);
  const hooked = setup({ ...ONE_BYTE_PER_NS, scanCostNs: (pages) => 7 * pages + 3 }).link;
  assert.equal(hooked.scanPages(2), 17);
});

test('a stall pauses serialization and holds deliveries until it ends', () => {
  const { scheduler, link, arrivals } = setup();
  link.send('big', 4096); // 0..1000 sends 1000 bytes, stall 1000..11000, then 3096 more → 14096
  link.stall(1000, 11_000);
  scheduler.runUntil(100_000, 100);
  assert.deepEqual(arrivals, [['big', 15_096]]);

  const inFlight = setup();
  inFlight.link.send('small', 100); // serialized by 100, would arrive at 1100
  inFlight.link.stall(500, 2000);
  inFlight.scheduler.runUntil(100_000, 100);
  assert.deepEqual(inFlight.arrivals, [['small', 2000]]);
});

test('stalls that meet or overlap add up to their union', () => {
  // One stall 1000..11000 and one met at its end, 11000..13000: as a single stall 1000..13000.
  const met = setup();
  met.link.send('big', 4096);
  met.link.stall(1000, 11_000);
  met.link.stall(11_000, 13_000);
  met.scheduler.runUntil(100_000, 100);
  assert.deepEqual(met.arrivals, [['big', 17_096]]);
  // An overlapping one extends it only by the part beyond its end.
  const overlap = setup();
  overlap.link.send('big', 4096);
  overlap.link.stall(1000, 11_000);
  overlap.link.stall(5000, 12_000);
  overlap.scheduler.runUntil(100_000, 100);
  assert.deepEqual(overlap.arrivals, [['big', 16_096]]);
});

test('a bandwidth change re-times queued messages from the change on', () => {
  const { scheduler, link, arrivals } = setup();
  link.send('m', 4096);
  scheduler.runUntil(1000, 100);
  link.setBandwidthAt(2000, 2_000_000_000); // 2000 bytes by 2000 ns, then 2096 at 2 B/ns = 1048 ns
  scheduler.runUntil(100_000, 100);
  assert.deepEqual(arrivals, [['m', 4048]]);

  const zero = setup();
  zero.link.setBandwidthAt(0, 0);
  assert.equal(zero.link.send('x', 10).ok && zero.link.wireFreeAtNs(), Infinity);
  zero.scheduler.runUntil(50_000, 100);
  assert.deepEqual(zero.arrivals, []);
  zero.link.setBandwidthAt(60_000, 1_000_000_000);
  zero.scheduler.runUntil(100_000, 100);
  assert.deepEqual(zero.arrivals, [['x', 61_010]]);
  assert.throws(() => zero.link.setBandwidthAt(10, 5), /in the past/);
});

test('a cut drops what has not arrived, fails later sends and calls onCut', () => {
  const { scheduler, link, arrivals, cuts } = setup();
  link.send('a', 100); // arrives at 1100
  link.send('b', 4000); // arrives at 5100
  link.send('c', 10); // arrives at 5110
  link.cutAt(5100); // b is due exactly at the cut: dropped
  scheduler.runUntil(100_000, 100);
  assert.deepEqual(arrivals, [['a', 1100]]);
  assert.deepEqual(cuts, [[5100, 2]]);
  assert.ok(link.isCut);
  const after = link.send('d', 1);
  assert.ok(!after.ok && after.error.code === 'LINK_CUT');
  assert.equal(link.counters.messagesDropped, 2);
});

test('the two directions of a link are independent; a link cut takes both', () => {
  const scheduler = new Scheduler({ seed: 1 });
  const link = new Link<string, string>(scheduler, 'mig', {
    stream: { bandwidthBytesPerSec: 1_000_000_000, latencyNs: 1000 },
    returnPath: { bandwidthBytesPerSec: 100_000_000, latencyNs: 1000 },
  });
  const log: string[] = [];
  link.stream.connect({ deliver: (p, _s, now) => log.push(`${p}@${now}`), onCut: (now) => log.push(`stream cut@${now}`) });
  link.returnPath.connect({ deliver: (p, _s, now) => log.push(`${p}@${now}`), onCut: (now) => log.push(`rp cut@${now}`) });
  link.stream.send('pages', 1_000_000); // busy until 1,000,000
  link.returnPath.send('req', 12); // 120 ns at 10 ns/byte, + 1000
  scheduler.runUntil(2_000_000, 100);
  assert.deepEqual(log, ['req@1120', 'pages@1001000']);
  link.cutAt(3_000_000);
  scheduler.runUntil(4_000_000, 100);
  assert.deepEqual(log.slice(2), ['stream cut@3000000', 'rp cut@3000000']);
  assert.ok(!link.returnPath.send('late', 1).ok);
});

test('random traffic arrives in order, no earlier than size/bandwidth + latency (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(20_000), fc.integer({ min: 0, max: 9000 })), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 1, max: 5 }),
      (sends, gbps) => {
        const scheduler = new Scheduler({ seed: 9 });
        const got: Array<{ id: number; at: number }> = [];
        const link = new LinkDirection<number>(scheduler, 'p', { bandwidthBytesPerSec: gbps * 1e9, latencyNs: 700 }, {
          deliver: (id, _size, now) => got.push({ id, at: now }),
        });
        const sendTimes = sends.map(([t]) => t).sort((a, b) => a - b);
        sendTimes.forEach((t, id) => scheduler.at(t, () => link.send(id, sends[id][1])));
        scheduler.runUntil(() => false, 10_000);
        assert.deepEqual(got.map((g) => g.id), sendTimes.map((_, id) => id));
        for (let i = 0; i < got.length; i++) {
          assert.ok(got[i].at >= sendTimes[i] + 700 + Math.ceil(sends[i][1] / gbps));
          if (i > 0) assert.ok(got[i].at >= got[i - 1].at);
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('after thousands of settled rate changes a message serializes at the rate in force, as computed by hand', () => {
  const { scheduler, link, arrivals } = setup();
  // Alternate 1 and 2 bytes per ns every 10 µs; each message fits in its window and is delivered.
  let now = 0;
  for (let i = 0; i < 3000; i++) {
    link.setBandwidthAt(now, i % 2 === 0 ? 2_000_000_000 : 1_000_000_000);
    link.send(`m${i}`, 1000);
    now += 10_000;
    scheduler.runUntil(now, 100_000);
  }
  assert.equal(arrivals.length, 3000);
  // The last change (i = 2999) set 1 byte per ns at 29,990,000; now is 30,000,000.
  assert.deepEqual(link.send('late', 4096), { ok: true, serializedAtNs: 30_004_096, deliverAtNs: 30_005_096 });
  // A change still ahead of now applies where it starts: 'next' queues behind 'late' (30,004,096),
  // sends 5,904 bytes at 1 per ns until 30,010,000, then 2,096 at 4 per ns (524 ns).
  link.setBandwidthAt(30_010_000, 4_000_000_000);
  assert.deepEqual(link.send('next', 8000), { ok: true, serializedAtNs: 30_010_524, deliverAtNs: 30_011_524 });
});
