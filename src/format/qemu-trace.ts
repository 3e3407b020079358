/**
 * QEMU 7.2's own account of a migration's convergence: the trace events of its migration thread,
 * as the `log` trace backend writes them with `-msg timestamp=on` (`PID@SEC.USEC:name args`).
 * `npm run lab -- --trace-migration` (harness/lab/lab-run.ts) turns them on in the source QEMU
 * and keeps them in each run's record (`qemu_trace`), so a run says when each convergence check
 * happened, what was pending against which threshold, and how many pages each 50 ms iteration
 * examined. The simulator's checks come out in the same shape (sim/fidelity/checks.ts).
 *
 * The events (migration/trace-events, 7.2; the format strings there):
 * - migrate_pending: the check in migration_iteration_run, `pending size N max M (pre = ...)`;
 * - migrate_transferred: migration_update_counters closing a ≥ 100 ms window, `transferred N
 *   time_spent MS bandwidth B max_size T` (B in bytes per ms, T the new threshold);
 * - migration_bitmap_sync_end: a dirty sync, `dirty_pages N`: QEMU's num_dirty_pages_period, the
 *   pages newly dirty since the sync period began (a sync more than 1 s after the period's start
 *   ends it, after this event), so within the first second each count includes the earlier ones;
 * - ram_save_iterate_big_wait: an iteration that stopped at MAX_WAIT, `big wait: MS milliseconds,
 *   N iterations` (N: the pages it saved, zero or normal);
 * - migration_thread_low_pending: the decision to complete, `N`;
 * - migration_completion_vm_stop: the guest stopped, `ret N`.
 *
 * Pure: text in, events out.
 */

/** One trace event: milliseconds since `t0EpochMs` (null without a time stamp), its kind, its numbers. */
export type QemuTraceEvent =
  | readonly [tMs: number | null, kind: 'pending', pendingBytes: number, thresholdBytes: number]
  | readonly [tMs: number | null, kind: 'window', transferredBytes: number, timeSpentMs: number, bytesPerMs: number, thresholdBytes: number]
  | readonly [tMs: number | null, kind: 'sync', dirtyPages: number]
  | readonly [tMs: number | null, kind: 'big-wait', ms: number, pages: number]
  | readonly [tMs: number | null, kind: 'low-pending', pendingBytes: number]
  | readonly [tMs: number | null, kind: 'vm-stop', ret: number];

/** The `-trace` patterns that produce these events. */
export const QEMU_TRACE_EVENTS: readonly string[] = [
  'migrate_pending', 'migrate_transferred', 'migration_bitmap_sync_end', 'ram_save_iterate_big_wait',
  'migration_thread_low_pending', 'migration_completion_vm_stop',
];

const STAMP = /^(?:\d+@(\d+)\.(\d{6}):)?(\w+) (.*)$/;

/** A stamped line's time, ms since `t0EpochMs` (unrounded): `PID@SEC.USEC:` as STAMP matches it. */
function stampMs(sec: string, usec: string, t0EpochMs: number): number {
  return Number(sec) * 1000 + Number(usec) / 1000 - t0EpochMs;
}

function numbers(text: string): number[] {
  return [...text.matchAll(/-?\d+(?:\.\d+)?/g)].map((m) => Number(m[0]));
}

/**
 * The events of a trace log, in order; lines of other events or other shapes are skipped.
 * `t0EpochMs`: the wall-clock time (ms since the epoch) the times are taken from, e.g. when
 * `migrate` was issued; times are rounded to 0.1 ms.
 */
export function parseQemuTrace(text: string, t0EpochMs: number): QemuTraceEvent[] {
  const out: QemuTraceEvent[] = [];
  for (const line of text.split('\n')) {
    const m = STAMP.exec(line.trim());
    if (m === null) continue;
    const t = m[1] === undefined ? null : Math.round(stampMs(m[1], m[2], t0EpochMs) * 10) / 10;
    const n = numbers(m[4]);
    switch (m[3]) {
      case 'migrate_pending':
        if (n.length >= 2) out.push([t, 'pending', n[0], n[1]]);
        break;
      case 'migrate_transferred':
        if (n.length >= 4) out.push([t, 'window', n[0], n[1], n[2], n[3]]);
        break;
      case 'migration_bitmap_sync_end':
        if (n.length >= 1) out.push([t, 'sync', n[0]]);
        break;
      case 'ram_save_iterate_big_wait':
        if (n.length >= 2) out.push([t, 'big-wait', n[0], n[1]]);
        break;
      case 'migration_thread_low_pending':
        if (n.length >= 1) out.push([t, 'low-pending', n[0]]);
        break;
      case 'migration_completion_vm_stop':
        if (n.length >= 1) out.push([t, 'vm-stop', n[0]]);
        break;
      default:
        break;
    }
  }
  return out;
}

/**
 * How long the dirty syncs took, where the trace brackets one: a sync whose previous event is a
 * closed bandwidth window (migration_rate_limit ends the loop; the next migration_iteration_run
 * syncs first in ram_save_pending, taking the iothread lock), `running`, or the guest's stop (the
 * final sync in ram_save_complete), `stopped`. Milliseconds, in trace order. A sync after an
 * iteration or a check is not bracketed: the scan's work comes between.
 */
export function bracketedSyncsMs(events: readonly QemuTraceEvent[]): { readonly running: number[]; readonly stopped: number[] } {
  const running: number[] = [];
  const stopped: number[] = [];
  for (let i = 1; i < events.length; i++) {
    const [t, kind] = events[i];
    const [tPrev, kindPrev] = events[i - 1];
    if (kind !== 'sync' || t === null || tPrev === null) continue;
    const ms = Math.round((t - tPrev) * 10) / 10;
    if (kindPrev === 'window') running.push(ms);
    else if (kindPrev === 'vm-stop') stopped.push(ms);
  }
  return { running, stopped };
}

/** One line per event, for the console: `  104.2 ms  pending 344981504 B, threshold 230030919 B`. */
export function qemuTraceLines(events: readonly QemuTraceEvent[]): string[] {
  return events.map((e) => {
    const t = e[0] === null ? '      ?' : `${e[0].toFixed(1).padStart(7)} ms`;
    switch (e[1]) {
      case 'pending': return `${t}  pending ${e[2]} B, threshold ${e[3]} B${e[2] !== 0 && e[2] >= e[3] ? ' (iterate)' : ' (complete)'}`;
      case 'window': return `${t}  window closed: ${e[2]} B in ${e[3]} ms, threshold now ${e[5]} B`;
      case 'sync': return `${t}  dirty sync: ${e[2]} pages dirty this period`;
      case 'big-wait': return `${t}  iteration stopped at MAX_WAIT: ${e[2]} ms, ${e[3]} pages saved`;
      case 'low-pending': return `${t}  pending ${e[2]} B is below the threshold: complete`;
      case 'vm-stop': return `${t}  guest stopped (ret ${e[2]})`;
      default: return t;
    }
  });
}

/**
 * The `-trace` patterns of the destination's loading, for `--trace-migration` (lab-run.ts): the
 * end of each RAM section (ram_load_complete), the start of each top-level section
 * (`vmstate_load <idstr>, <vmsd name>`), and the end of the device sections
 * (qemu_loadvm_state_post_main). Few lines: one per section, not per page.
 */
export const QEMU_DESTINATION_TRACE_EVENTS: readonly string[] = ['ram_load_complete', 'vmstate_load', 'qemu_loadvm_state_post_main'];

/** How the destination loaded the end of the stream, from its trace. */
export interface QemuDestinationLoad {
  /** When the last RAM section was loaded, ms since t0. */
  readonly ramLoadedMs: number;
  /** When the device state was loaded (qemu_loadvm_state_post_main), ms since t0. */
  readonly devicesLoadedMs: number;
  /** The sections after the last RAM section that took 1 ms or more, in order: [idstr, ms]. */
  readonly slowSections: readonly (readonly [string, number])[];
}

/**
 * The destination's load of the final pass, or null when the trace lacks the events (a failed
 * run, or one without time stamps). A section's time runs from its vmstate_load to the next
 * section's, the last one's to qemu_loadvm_state_post_main.
 */
export function destinationLoadOf(text: string, t0EpochMs: number): QemuDestinationLoad | null {
  const events: { t: number; name: string; args: string }[] = [];
  for (const line of text.split('\n')) {
    const m = STAMP.exec(line.trim());
    if (m === null || m[1] === undefined) continue;
    events.push({ t: stampMs(m[1], m[2], t0EpochMs), name: m[3], args: m[4] });
  }
  let lastRam = -1;
  events.forEach((e, i) => { if (e.name === 'ram_load_complete') lastRam = i; });
  const postMain = events.findIndex((e, i) => i > lastRam && e.name === 'qemu_loadvm_state_post_main');
  if (lastRam < 0 || postMain < 0) return null;
  const round = (ms: number) => Math.round(ms * 10) / 10;
  const sections = events.slice(lastRam + 1, postMain + 1).filter((e) => e.name === 'vmstate_load' || e.name === 'qemu_loadvm_state_post_main');
  const slowSections: [string, number][] = [];
  for (let i = 0; i + 1 < sections.length; i++) {
    const ms = round(sections[i + 1].t - sections[i].t);
    if (ms >= 1) slowSections.push([sections[i].args.split(',')[0].trim(), ms]);
  }
  return { ramLoadedMs: round(events[lastRam].t), devicesLoadedMs: round(events[postMain].t), slowSections };
}
