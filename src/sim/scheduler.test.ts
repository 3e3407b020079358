// Tests of the virtual clock and the event scheduler: (timeNs, seq) order with FIFO ties
// (checked with fast-check against a sort), cancellation, bounded runs by time, predicate and
// event count, events scheduled from events, and a large queue.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { VirtualClock } from './clock.ts';
import { Scheduler, type ScheduledEvent } from './scheduler.ts';

test('the clock moves forward only, in integer ns', () => {
  const clock = new VirtualClock(5);
  clock.advanceBy(10);
  assert.equal(clock.nowNs, 15);
  clock.advanceTo(15);
  assert.throws(() => clock.advanceTo(14), /cannot go back/);
  assert.throws(() => clock.advanceTo(20.5), /integer/);
});

test('events run in (time, scheduling order); ties are FIFO (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(50), fc.boolean()), { maxLength: 300 }), (specs) => {
      const s = new Scheduler({ seed: 1 });
      const ran: number[] = [];
      const events: ScheduledEvent[] = [];
      specs.forEach(([time], i) => events.push(s.at(time, () => ran.push(i))));
      const cancelled = new Set<number>();
      specs.forEach(([, cancel], i) => {
        if (cancel) {
          assert.ok(s.cancel(events[i]));
          cancelled.add(i);
        }
      });
      assert.equal(s.pendingCount, specs.length - cancelled.size);
      const result = s.runUntil(() => false, 10_000);
      assert.equal(result.reason, 'idle');
      const expected = specs
        .map(([time], i) => ({ time, i }))
        .filter((e) => !cancelled.has(e.i))
        .sort((a, b) => a.time - b.time || a.i - b.i)
        .map((e) => e.i);
      assert.deepEqual(ran, expected);
      assert.equal(s.pendingCount, 0);
    }),
    { numRuns: 300 },
  );
});

test('events scheduled from events keep the order, including at the same instant', () => {
  const s = new Scheduler({ seed: 7 });
  const log: string[] = [];
  s.at(10, (now) => {
    log.push(`a@${now}`);
    s.after(0, (t) => log.push(`c@${t}`)); // same instant: after everything already due at 10
    s.after(5, (t) => log.push(`d@${t}`));
  });
  s.at(10, (now) => log.push(`b@${now}`));
  s.at(15, (now) => log.push(`e@${now}`)); // scheduled before d, so it runs before d
  s.runUntil(100, 1000);
  assert.deepEqual(log, ['a@10', 'b@10', 'c@10', 'e@15', 'd@15']);
  assert.equal(s.nowNs, 100);
  assert.throws(() => s.at(99, () => {}), /before now/);
});

test('runUntil a time stops at the limit and moves the clock there', () => {
  const s = new Scheduler({ seed: 1 });
  const ran: number[] = [];
  for (const t of [5, 10, 10, 11, 30]) s.at(t, (now) => ran.push(now));
  assert.deepEqual(s.runUntil(10, 100), { reason: 'time-reached', eventsRun: 3, nowNs: 10 });
  assert.deepEqual(ran, [5, 10, 10]);
  assert.equal(s.peekTimeNs(), 11);
  assert.deepEqual(s.runUntil(20, 100), { reason: 'time-reached', eventsRun: 1, nowNs: 20 });
  assert.deepEqual(s.runUntil(1000, 100), { reason: 'time-reached', eventsRun: 1, nowNs: 1000 });
  assert.equal(s.peekTimeNs(), null);
});

test('runs are bounded by maxEvents and by a predicate', () => {
  const s = new Scheduler({ seed: 1 });
  let count = 0;
  const tick = (): void => {
    count++;
    s.after(1, tick);
  };
  s.at(0, tick);
  assert.deepEqual(s.runUntil(1_000_000, 50), { reason: 'max-events', eventsRun: 50, nowNs: 49 });
  assert.deepEqual(s.runUntil(() => count >= 80, 1000), { reason: 'predicate', eventsRun: 30, nowNs: 79 });
  assert.equal(s.executedCount, 80);
});

test('cancel is refused for events that ran or were cancelled', () => {
  const s = new Scheduler({ seed: 1 });
  const a = s.at(1, () => {});
  const b = s.at(2, () => assert.fail('cancelled event ran'));
  assert.ok(s.cancel(b));
  assert.ok(!s.cancel(b));
  s.runUntil(10, 10);
  assert.ok(!a.pending && !s.cancel(a));
});

test('the seed fixes the root PRNG', () => {
  const a = new Scheduler({ seed: 42 }).rng;
  const b = new Scheduler({ seed: 42 }).rng;
  assert.deepEqual([a.u32(), a.u32()], [b.u32(), b.u32()]);
});

test('half a million events with heavy cancellation stay ordered', () => {
  const s = new Scheduler({ seed: 3 });
  const rng = s.rng.fork();
  const events: ScheduledEvent[] = [];
  for (let i = 0; i < 500_000; i++) events.push(s.at(rng.int(0, 1_000_000), () => {}));
  for (let i = 0; i < events.length; i += 3) s.cancel(events[i]);
  let last = -1;
  let ran = 0;
  while (s.step()) {
    assert.ok(s.nowNs >= last);
    last = s.nowNs;
    ran++;
  }
  assert.equal(ran, 500_000 - Math.ceil(500_000 / 3));
});
