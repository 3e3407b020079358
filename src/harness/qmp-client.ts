/**
 * An asynchronous QMP client for driving real QEMU in tests and tools. It connects over a unix
 * socket (retrying until the socket exists) or TCP, reads the greeting, negotiates
 * `qmp_capabilities`, and then matches replies to commands by `id`. Asynchronous events are
 * queued until a `waitEvent` call takes them. Framing is by newline over a byte buffer, so
 * partial reads and multi-byte UTF-8 split across chunks are handled.
 *
 * Errors are typed: QmpError carries QEMU's `{class, desc}`; QmpClosedError means the
 * connection ended (usually QEMU exited); QmpTimeoutError means a deadline passed.
 */
import { connect, type Socket } from 'node:net';

/** The `{"QMP": …}` greeting QEMU sends on connect. */
export interface QmpGreeting {
  readonly QMP: {
    readonly version: {
      readonly qemu: { readonly major: number; readonly minor: number; readonly micro: number };
      readonly package: string;
    };
    readonly capabilities: readonly string[];
  };
}

/** An asynchronous QMP event. `data` is absent for data-less events such as STOP. */
export interface QmpEvent {
  readonly event: string;
  readonly data?: Record<string, unknown>;
  readonly timestamp: { readonly seconds: number; readonly microseconds: number };
}

/** The parts of `query-migrate`'s MigrationInfo the harness looks at (other members pass through). */
export interface MigrationInfo {
  readonly status?: string;
  readonly 'error-desc'?: string;
  readonly 'total-time'?: number;
  readonly ram?: Record<string, number>;
  readonly [member: string]: unknown;
}

/** A command failed on the QEMU side: `{"error": {"class", "desc"}}`. */
export class QmpError extends Error {
  override name = 'QmpError';
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${desc}`);
  }

  /** QEMU's error class (`GenericError`, `CommandNotFound`, …); `class` is reserved in TS. */
  get class(): string {
    return this.errorClass;
  }
}

/** The QMP connection closed (or could not be opened) while something waited on it. */
export class QmpClosedError extends Error {
  override name = 'QmpClosedError';
}

/** A QMP operation did not finish before its deadline. */
export class QmpTimeoutError extends Error {
  override name = 'QmpTimeoutError';
}

export interface QmpConnectOptions {
  /** How long to keep retrying the connection and to wait for the greeting. Default 30 s. */
  readonly timeoutMs?: number;
  /** Called between connection attempts; returning false aborts (the QEMU process died). */
  readonly isAlive?: () => boolean;
  /** Default deadline for each `execute`. Default 60 s. */
  readonly commandTimeoutMs?: number;
}

interface Pending {
  readonly command: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
  readonly timer: NodeJS.Timeout;
}

interface EventWaiter {
  readonly name: string;
  readonly predicate: (event: QmpEvent) => boolean;
  resolve(event: QmpEvent): void;
  reject(error: Error): void;
  readonly timer: NodeJS.Timeout;
}

const CONNECT_RETRY_MS = 25;
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;
const NEWLINE = 0x0a;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function openSocket(target: { path: string } | { host: string; port: number }): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = 'path' in target ? connect(target.path) : connect(target.port, target.host);
    const onError = (error: Error): void => {
      socket.destroy();
      reject(error);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

export class QmpClient {
  /** The greeting QEMU sent; set before `connect*` resolves. */
  greeting!: QmpGreeting;
  private readonly socket: Socket;
  private readonly commandTimeoutMs: number;
  private chunks: Buffer[] = [];
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly queuedEvents: QmpEvent[] = [];
  private readonly eventWaiters = new Set<EventWaiter>();
  private greetingWaiter: { resolve(g: QmpGreeting): void; reject(e: Error): void } | null = null;
  private closedError: Error | null = null;

  private constructor(socket: Socket, commandTimeoutMs: number) {
    this.socket = socket;
    this.commandTimeoutMs = commandTimeoutMs;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error: Error) => this.fail(new QmpClosedError(`QMP connection error: ${error.message}`)));
    socket.on('close', () => this.fail(new QmpClosedError('QMP connection closed')));
  }

  /** Connects to a unix-socket QMP monitor, retrying until it accepts, and negotiates. */
  static async connectUnix(path: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    return QmpClient.connectWithRetry({ path }, options);
  }

  /** Connects to a TCP QMP monitor (`-qmp tcp:host:port,server=on,wait=off`) and negotiates. */
  static async connectTcp(host: string, port: number, options: QmpConnectOptions = {}): Promise<QmpClient> {
    return QmpClient.connectWithRetry({ host, port }, options);
  }

  private static async connectWithRetry(
    target: { path: string } | { host: string; port: number },
    options: QmpConnectOptions,
  ): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown = null;
    for (;;) {
      if (options.isAlive !== undefined && !options.isAlive()) {
        throw new QmpClosedError('QEMU exited before its QMP monitor accepted a connection');
      }
      try {
        const socket = await openSocket(target);
        const client = new QmpClient(socket, options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
        try {
          await client.handshake(Math.max(1, deadline - Date.now()));
        } catch (error) {
          client.close();
          throw error;
        }
        return client;
      } catch (error) {
        if (error instanceof QmpError || error instanceof QmpTimeoutError) throw error;
        lastError = error;
      }
      if (Date.now() >= deadline) {
        const where = 'path' in target ? target.path : `${target.host}:${target.port}`;
        throw new QmpTimeoutError(`QMP connect to ${where} failed within ${timeoutMs} ms: ${String(lastError)}`);
      }
      await sleep(CONNECT_RETRY_MS);
    }
  }

  private async handshake(timeoutMs: number): Promise<void> {
    const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
      const timer = setTimeout(() => reject(new QmpTimeoutError(`no QMP greeting within ${timeoutMs} ms`)), timeoutMs);
      this.greetingWaiter = {
        resolve: (g) => {
          clearTimeout(timer);
          resolve(g);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      if (this.closedError !== null) this.greetingWaiter.reject(this.closedError);
    });
    this.greeting = greeting;
    await this.execute('qmp_capabilities');
  }

  /** Runs a command and resolves with its `return` value, or rejects with a QmpError. */
  execute<T = unknown>(name: string, args?: Record<string, unknown>, timeoutMs = this.commandTimeoutMs): Promise<T> {
    if (this.closedError !== null) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const message: Record<string, unknown> = { execute: name, id };
    if (args !== undefined) message.arguments = args;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpTimeoutError(`QMP ${name}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command: name, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** Runs an HMP command line through `human-monitor-command` and returns its text output. */
  async hmp(commandLine: string): Promise<string> {
    return this.execute<string>('human-monitor-command', { 'command-line': commandLine });
  }

  /**
   * Resolves with the first event named `name` that satisfies `predicate`, taking it from the
   * queue of events received so far (oldest first) or waiting for a new one.
   */
  waitEvent(name: string, predicate: (event: QmpEvent) => boolean = () => true, timeoutMs = 30_000): Promise<QmpEvent> {
    const index = this.queuedEvents.findIndex((e) => e.event === name && predicate(e));
    if (index >= 0) return Promise.resolve(this.queuedEvents.splice(index, 1)[0]);
    if (this.closedError !== null) return Promise.reject(this.closedError);
    return new Promise<QmpEvent>((resolve, reject) => {
      const waiter: EventWaiter = {
        name,
        predicate,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.eventWaiters.delete(waiter);
          reject(new QmpTimeoutError(`no ${name} event within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.eventWaiters.add(waiter);
    });
  }

  /** The events received and not yet taken by `waitEvent`, oldest first (a copy). */
  get events(): readonly QmpEvent[] {
    return [...this.queuedEvents];
  }

  /**
   * Polls `query-migrate` until its status is one of `statuses`, and returns that reply.
   * Throws QmpTimeoutError (with the last reply) when the deadline passes.
   */
  async waitMigration(statuses: Iterable<string>, timeoutMs: number, pollMs = 25): Promise<MigrationInfo> {
    const wanted = new Set(statuses);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await this.execute<MigrationInfo>('query-migrate');
      if (info.status !== undefined && wanted.has(info.status)) return info;
      if (Date.now() >= deadline) {
        throw new QmpTimeoutError(`migration did not reach ${[...wanted].join('/')} within ${timeoutMs} ms: ${JSON.stringify(info)}`);
      }
      await sleep(pollMs);
    }
  }

  /** True once the connection has ended. */
  get closed(): boolean {
    return this.closedError !== null;
  }

  /** Closes the connection; pending commands and waiters reject with QmpClosedError. */
  close(): void {
    this.fail(new QmpClosedError('QMP client closed'));
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    let start = 0;
    let newline = chunk.indexOf(NEWLINE, start);
    while (newline >= 0) {
      const piece = chunk.subarray(start, newline);
      const line = this.chunks.length === 0 ? piece : Buffer.concat([...this.chunks, piece]);
      this.chunks = [];
      this.onLine(line.toString('utf8'));
      start = newline + 1;
      newline = chunk.indexOf(NEWLINE, start);
    }
    if (start < chunk.length) this.chunks.push(chunk.subarray(start));
  }

  private onLine(text: string): void {
    if (text.trim() === '') return;
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(text) as Record<string, unknown>;
    } catch {
      this.fail(new QmpClosedError(`QMP sent a line that is not JSON: ${text.slice(0, 200)}`));
      this.socket.destroy();
      return;
    }
    if ('QMP' in message) {
      this.greetingWaiter?.resolve(message as unknown as QmpGreeting);
      this.greetingWaiter = null;
    } else if ('event' in message) {
      this.onEvent(message as unknown as QmpEvent);
    } else if ('return' in message || 'error' in message) {
      this.onReply(message);
    }
  }

  private onEvent(event: QmpEvent): void {
    for (const waiter of this.eventWaiters) {
      if (waiter.name === event.event && waiter.predicate(event)) {
        this.eventWaiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(event);
        return;
      }
    }
    this.queuedEvents.push(event);
  }

  private onReply(message: Record<string, unknown>): void {
    const id = typeof message.id === 'number' ? message.id : null;
    // Replies without an id (never expected, since every command carries one) go to the oldest.
    const key = id ?? this.pending.keys().next().value;
    if (key === undefined) return;
    const pending = this.pending.get(key);
    if (pending === undefined) return;
    this.pending.delete(key);
    clearTimeout(pending.timer);
    if ('error' in message) {
      const error = (message.error ?? {}) as { class?: string; desc?: string };
      pending.reject(new QmpError(pending.command, error.class ?? 'UnknownError', error.desc ?? ''));
    } else {
      pending.resolve(message.return);
    }
  }

  private fail(error: Error): void {
    if (this.closedError !== null) return;
    this.closedError = error;
    this.greetingWaiter?.reject(error);
    this.greetingWaiter = null;
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new QmpClosedError(`QMP ${pending.command}: ${error.message}`));
    }
    this.pending.clear();
    for (const waiter of this.eventWaiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new QmpClosedError(`waiting for ${waiter.name}: ${error.message}`));
    }
    this.eventWaiters.clear();
  }
}
