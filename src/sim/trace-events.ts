/**
 * The events a simulation run writes to its JSON-lines trace (trace.ts hashes them), one
 * method per kind so every record of a kind has the same keys in the same order. Every record
 * starts with `t` (virtual time, ns) and `ev` (the kind):
 *
 * | ev          | other keys                                   | written when                               |
 * |-------------|----------------------------------------------|--------------------------------------------|
 * | run         | scenario, seed, pages, backing               | the world is built                         |
 * | status      | side, from, to                               | an engine changes MigrationStatus          |
 * | sync        | count, remaining                             | the source's dirty-sync-count grows        |
 * | iteration   | n, transferred, remaining, dirtyRate, mbps   | a progress row is taken (one per sync)     |
 * | notifier    | reason, running                              | the source runs its precopy notifiers      |
 * | hint        | page, count, cmdId                           | a free page hint reaches the source        |
 * | request     | page                                         | the source receives a page request         |
 * | fault       | page                                         | a destination vCPU faults on a page        |
 * | page-ready  | page, waited                                 | a faulted page is placed (waited, ns)      |
 * | guest       | side, action                                 | the guest stops, runs, moves sides         |
 * | event       | side, name                                   | an engine emits a QMP event                |
 * | mark        | side, name                                   | an engine takes a rare branch              |
 * | done        | side, dones                                  | the guest driver acts on DONE              |
 * | end         | status, reason                               | the run ends                               |
 *
 * Determinism: records carry only integers, strings and booleans derived from the seeded run;
 * never wall-clock time.
 */
import type { TraceWriter } from './trace.ts';

export type Side = 'source' | 'destination';

export class TraceEvents {
  constructor(
    /** Where records go. */
    readonly writer: TraceWriter,
  ) {}

  run(t: number, scenario: string, seed: number, pages: number, backing: string): void {
    this.writer.write({ t, ev: 'run', scenario, seed, pages, backing });
  }

  status(t: number, side: Side, from: string, to: string): void {
    this.writer.write({ t, ev: 'status', side, from, to });
  }

  sync(t: number, count: number, remaining: number): void {
    this.writer.write({ t, ev: 'sync', count, remaining });
  }

  iteration(t: number, n: number, transferred: number, remaining: number, dirtyRate: number, mbps: number): void {
    this.writer.write({ t, ev: 'iteration', n, transferred, remaining, dirtyRate, mbps: Math.round(mbps * 1000) / 1000 });
  }

  notifier(t: number, reason: string, running: boolean): void {
    this.writer.write({ t, ev: 'notifier', reason, running });
  }

  hint(t: number, page: number, count: number, cmdId: number): void {
    this.writer.write({ t, ev: 'hint', page, count, cmdId });
  }

  request(t: number, page: number): void {
    this.writer.write({ t, ev: 'request', page });
  }

  fault(t: number, page: number): void {
    this.writer.write({ t, ev: 'fault', page });
  }

  pageReady(t: number, page: number, waited: number): void {
    this.writer.write({ t, ev: 'page-ready', page, waited });
  }

  guest(t: number, side: Side, action: string): void {
    this.writer.write({ t, ev: 'guest', side, action });
  }

  event(t: number, side: Side, name: string): void {
    this.writer.write({ t, ev: 'event', side, name });
  }

  mark(t: number, side: Side, name: string, detail?: string): void {
    this.writer.write(detail === undefined ? { t, ev: 'mark', side, name } : { t, ev: 'mark', side, name, detail });
  }

  done(t: number, side: Side, dones: number): void {
    this.writer.write({ t, ev: 'done', side, dones });
  }

  end(t: number, status: string, reason: string): void {
    this.writer.write({ t, ev: 'end', status, reason });
  }
}
