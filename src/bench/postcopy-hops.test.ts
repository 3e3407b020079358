/**
 * The per-hop join of postcopy request stamps: a fault's hops are the differences of its
 * stamps in order and add up to its latency; a fault without a request, or whose source stamps
 * are missing, has none; the table lists the slowest faults first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatHops, HOP_NAMES, joinHops, type FaultRecord } from './postcopy-hops.ts';
import type { DestHop, SourceHop } from '../host/hop-trace.ts';

const MS = 1e6;

test('joinHops: hops are the stamps\' differences, sum to the latency, and join on page then request number', () => {
  const faults: FaultRecord[] = [
    { startNs: 100 * MS, latencyNs: 10 * MS, page: 7 },
    { startNs: 200 * MS, latencyNs: 3 * MS, page: 9 },
    { startNs: 300 * MS, latencyNs: 1 * MS, page: 11 }, // answered without a request
  ];
  const dest: DestHop[] = [
    { page: 7, request: 1, faultSeenNs: 101 * MS, requestWrittenNs: 102 * MS, pageReadNs: 106 * MS, placedNs: 107 * MS, channel: 'preempt' },
    { page: 9, request: 2, faultSeenNs: 200.5 * MS, requestWrittenNs: 201 * MS, pageReadNs: 202 * MS, placedNs: 202.5 * MS, channel: 'main' },
    { page: 11, request: 0, faultSeenNs: 300.5 * MS, requestWrittenNs: 0, pageReadNs: 0, placedNs: 0, channel: '' },
  ];
  const source: SourceHop[] = [
    { request: 1, readNs: 104 * MS, sentNs: 105 * MS },
    { request: 2, readNs: 201.5 * MS, sentNs: 201.75 * MS },
  ];
  const joined = joinHops(faults, dest, source);
  assert.deepEqual(joined[0].hopsNs, [1, 1, 2, 1, 1, 1, 3].map((x) => x * MS));
  assert.deepEqual(joined[1].hopsNs, [0.5, 0.5, 0.5, 0.25, 0.25, 0.5, 0.5].map((x) => x * MS));
  for (const f of joined.slice(0, 2)) assert.equal(f.hopsNs!.reduce((a, b) => a + b, 0), f.latencyNs);
  assert.equal(joined[2].hopsNs, null);
  assert.deepEqual(joined.map((f) => f.atMs), [0, 100, 200]);
  assert.equal(joined[1].channel, 'main');
  // The source never served request 2: no hops for that fault.
  assert.equal(joinHops(faults, dest, [{ request: 2, readNs: 201.5 * MS, sentNs: 0 }])[1].hopsNs, null);

  const table = formatHops(joined, 0.5).split('\n');
  assert.equal(table[0], 'faults 3, with a request and every stamp 2');
  assert.equal(table.length, 1 + 1 + HOP_NAMES.length + 1 + 2);
  // The tail is the slowest 1 of 2: the 10 ms fault; req→src is 2 ms in it, 0.5 in the faster one.
  assert.match(table[2 + HOP_NAMES.indexOf('req→src')], /^req→src\s+0\.50\s+2\.00$/);
  assert.equal(table[table.length - 2], '  10.00: 1.00 1.00 2.00 1.00 1.00 1.00 3.00; preempt, at 0');
});
