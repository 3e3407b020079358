/**
 * One QMP connection as a pure state machine: bytes in, lines out through a callback. It owns
 * the connection's framing and negotiation state and the order of its replies; qmp/server.ts
 * only moves bytes between a socket and this class, and the tests drive it without sockets.
 *
 * Ordering follows QEMU's monitor: in-band requests (and framing or JSON errors, which QEMU
 * queues the same way) are answered one at a time in arrival order; an `exec-oob` request is
 * dispatched at once, even while an earlier in-band command is still pending. With a
 * synchronous controller every reply is sent before `receive` returns.
 *
 * Flow control: at most `maxQueuedRequests` (QEMU: 8) in-band requests wait; beyond that the
 * session asks its transport to stop reading (`onFlowControl(true)`) and to resume when the
 * queue drains, as QEMU suspends the monitor.
 */
import type { MaybePromise } from './controller.ts';
import type { QmpDispatcher } from './dispatch.ts';
import { encodeQmpJson, parseQmpJson } from './json.ts';
import { isPromiseLike } from './maybe.ts';
import {
  LineFramer,
  checkRequest,
  formatReply,
  greeting,
  isBlankLine,
  isOobInput,
  newNegotiationState,
  type FramedInput,
  type NegotiationState,
  type QmpReply,
} from './protocol.ts';

/** QEMU's QMP_REQ_QUEUE_LEN_MAX. */
export const DEFAULT_MAX_QUEUED_REQUESTS = 8;

/** Options of a session. */
export interface QmpSessionOptions {
  /** Writes one line (a newline is appended by the session). */
  readonly send: (line: string) => void;
  /** Longest request line, bytes. */
  readonly maxLineBytes?: number;
  /** In-band requests allowed to wait before reading is paused. */
  readonly maxQueuedRequests?: number;
  /** Asked to pause (true) or resume (false) reading input. */
  readonly onFlowControl?: (paused: boolean) => void;
}

type Work = () => MaybePromise<QmpReply | null>;

/** A reply for a failure outside any command (the dispatcher already maps controller errors). */
function internalErrorReply(error: unknown): QmpReply {
  return { kind: 'error', error: { class: 'GenericError', desc: error instanceof Error ? error.message : String(error) }, id: undefined };
}

/** One client connection's protocol state. */
export class QmpSession {
  /** The connection's negotiation state (read by the server to route events). */
  readonly state: NegotiationState = newNegotiationState();
  private readonly framer: LineFramer;
  private readonly queue: Work[] = [];
  private busy = false;
  private paused = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly dispatcher: QmpDispatcher,
    private readonly options: QmpSessionOptions,
  ) {
    this.framer = new LineFramer(options.maxLineBytes);
  }

  /** Sends the greeting; call once when the connection opens. */
  start(): void {
    this.write(encodeQmpJson(greeting(this.dispatcher.controller.queryVersion())));
  }

  /** True once `qmp_capabilities` succeeded (events are delivered only then). */
  get negotiated(): boolean {
    return this.state.negotiated;
  }

  /** In-band requests waiting or running. */
  get pendingRequests(): number {
    return this.queue.length + (this.busy ? 1 : 0);
  }

  /** Feeds bytes from the client. */
  receive(chunk: Uint8Array): void {
    if (this.closed) return;
    for (const input of this.framer.push(chunk)) this.accept(input);
  }

  /** Delivers a formatted event line if the client has negotiated. */
  deliverEvent(line: string): void {
    if (this.state.negotiated) this.write(line);
  }

  /** Stops output (the connection is gone); pending work is dropped. */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.wakeIdle();
  }

  /** Resolves when no in-band request is pending (for tests and graceful shutdown). */
  whenIdle(): Promise<void> {
    if (this.pendingRequests === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private accept(input: FramedInput): void {
    if (input.kind === 'error') {
      this.enqueue(() => ({ kind: 'error', error: { class: 'GenericError', desc: input.desc }, id: undefined }));
      return;
    }
    if (isBlankLine(input.text)) return;
    const parsed = parseQmpJson(input.text);
    if (!parsed.ok) {
      this.enqueue(() => ({ kind: 'error', error: { class: 'GenericError', desc: parsed.desc }, id: undefined }));
      return;
    }
    const value = parsed.value;
    const work: Work = () => {
      const check = checkRequest(value, this.state.oobEnabled);
      if (!check.ok) return { kind: 'error', error: check.error, id: check.id };
      return this.dispatcher.execute(this.state, check.request);
    };
    if (isOobInput(value)) this.runNow(work);
    else this.enqueue(work);
  }

  /** Out of band: dispatched at once; its reply is written whenever it is ready. */
  private runNow(work: Work): void {
    const reply = work();
    if (isPromiseLike(reply)) void reply.then((r) => this.writeReply(r), (e: unknown) => this.writeReply(internalErrorReply(e)));
    else this.writeReply(reply);
  }

  private enqueue(work: Work): void {
    this.queue.push(work);
    const limit = this.options.maxQueuedRequests ?? DEFAULT_MAX_QUEUED_REQUESTS;
    if (!this.paused && this.queue.length >= limit) {
      this.paused = true;
      this.options.onFlowControl?.(true);
    }
    this.pump();
  }

  private pump(): void {
    while (!this.busy && !this.closed) {
      const work = this.queue.shift();
      if (work === undefined) break;
      const reply = work();
      if (isPromiseLike(reply)) {
        this.busy = true;
        const settle = (r: QmpReply | null): void => {
          this.busy = false;
          this.writeReply(r);
          this.pump();
        };
        void reply.then(settle, (e: unknown) => settle(internalErrorReply(e)));
        return;
      }
      this.writeReply(reply);
    }
    if (this.paused && this.queue.length === 0 && !this.closed) {
      this.paused = false;
      this.options.onFlowControl?.(false);
    }
    if (this.pendingRequests === 0) this.wakeIdle();
  }

  private writeReply(reply: QmpReply | null): void {
    if (reply !== null) this.write(formatReply(reply));
  }

  private write(line: string): void {
    if (!this.closed) this.options.send(line);
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
