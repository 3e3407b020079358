/**
 * QMP event delivery rules of QEMU 7.2 (monitor/monitor.c), pure:
 * - events go only to clients that finished capability negotiation (the session checks);
 * - guest-triggerable events are rate limited per event to one per second: the first is sent
 *   at once, later ones within the period are held and only the last held one is sent when the
 *   period ends (then a new period starts). Of our events only BALLOON_CHANGE is limited.
 *   A held event keeps the timestamp it was emitted with, as QEMU's queued QDict does.
 *
 * The limiter is a small state machine driven by the caller's clock and timer: `offer` at each
 * emission, `expire` when the timer it asked for fires.
 */
import type { QmpEventName, QmpTimestamp } from './controller.ts';

/** QEMU's monitor_qapi_event_conf rates for our events, ns (absent: not limited). */
export const EVENT_RATE_LIMITS_NS: Readonly<Partial<Record<QmpEventName, number>>> = Object.freeze({
  BALLOON_CHANGE: 1_000_000_000,
});

/** An event ready to print. */
export interface StampedEvent {
  readonly event: string;
  readonly data?: unknown;
  readonly timestamp: QmpTimestamp;
}

/** What the caller must do after an `offer` or `expire`. */
export interface LimiterAction {
  /** Events to deliver now, in order. */
  readonly deliver: readonly StampedEvent[];
  /** Arm a timer for this event name at this time (ns, caller's clock), or null. */
  readonly armAtNs: number | null;
}

interface PeriodState {
  pending: StampedEvent | null;
}

/** Per-event rate limiting with QEMU's "send first, hold the last" rule. */
export class EventRateLimiter {
  private readonly periods = new Map<string, PeriodState>();

  constructor(private readonly ratesNs: Readonly<Partial<Record<string, number>>> = EVENT_RATE_LIMITS_NS) {}

  /** An event was emitted at `nowNs`. */
  offer(event: StampedEvent, nowNs: number): LimiterAction {
    const rate = this.ratesNs[event.event];
    if (rate === undefined || rate <= 0) return { deliver: [event], armAtNs: null };
    const period = this.periods.get(event.event);
    if (period !== undefined) {
      period.pending = event;
      return { deliver: [], armAtNs: null };
    }
    this.periods.set(event.event, { pending: null });
    return { deliver: [event], armAtNs: nowNs + rate };
  }

  /** The timer armed for `eventName` fired at `nowNs`. */
  expire(eventName: string, nowNs: number): LimiterAction {
    const period = this.periods.get(eventName);
    if (period === undefined) return { deliver: [], armAtNs: null };
    if (period.pending === null) {
      this.periods.delete(eventName);
      return { deliver: [], armAtNs: null };
    }
    const held = period.pending;
    period.pending = null;
    return { deliver: [held], armAtNs: nowNs + (this.ratesNs[eventName] ?? 0) };
  }

  /** Names of events inside a rate-limit period (for tests and shutdown). */
  get limitedEvents(): readonly string[] {
    return [...this.periods.keys()];
  }
}
