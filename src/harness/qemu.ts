/**
 * Starting and driving a real qemu-system-x86_64 (7.2) for interop tests.
 *
 * `startQemu` spawns QEMU with the caller's arguments plus a private QMP unix socket and a
 * pidfile in a fresh temp directory, captures stderr, connects a QmpClient and arms two
 * watchdogs: an in-process timer that kills QEMU when its time is up, and (when coreutils'
 * `timeout` exists) an outer `timeout -k 3 N` wrapper so that a QEMU whose Node parent died
 * still ends. `stop()` asks QMP `quit`, then SIGTERM, then SIGKILL, by PID only, and waits.
 *
 * Helpers on the process: `pmemsave` (guest-physical bytes via a temp file), `migrateToFile`
 * (`migrate exec:cat > FILE`) and `loadFromFile` (`migrate-incoming exec:cat FILE` into a QEMU
 * started with `-incoming defer`). Failures throw typed errors that carry QEMU's stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { QmpClient, QmpClosedError, type MigrationInfo } from './qmp-client.ts';
import { makeTempDir, removeTempDir } from './ram-image.ts';
import { findQemu, searchPath, QEMU_BINARY } from './qemu-binary.ts';
import { describeExit, settlesWithin, shellQuote, sleep, waitForFileStable } from './process-util.ts';

export { findQemu, qemuAvailability, QEMU_BINARY, type QemuAvailability } from './qemu-binary.ts';

/** QEMU failed to start or its QMP monitor never answered. */
export class QemuStartError extends Error {
  override name = 'QemuStartError';
  constructor(message: string, readonly stderr: string) {
    super(stderr.trim() === '' ? message : `${message}; QEMU stderr: ${stderr.trim()}`);
  }
}

/** A migration (outgoing or incoming) ended in failure, or QEMU exited during it. */
export class QemuMigrationError extends Error {
  override name = 'QemuMigrationError';
  constructor(
    message: string,
    readonly status: string | null,
    readonly errorDesc: string | null,
    readonly stderr: string,
  ) {
    super(stderr.trim() === '' ? message : `${message}; QEMU stderr: ${stderr.trim()}`);
  }
}

export interface StartQemuOptions {
  /** QEMU arguments, e.g. `['-M', 'none', '-m', '16M', '-nodefaults', '-display', 'none', '-S']`. */
  readonly args: readonly string[];
  /** A label for messages. */
  readonly name?: string;
  /** QEMU is killed this long after start, whatever it is doing. Default 120 s. */
  readonly watchdogMs?: number;
  /** Deadline for the QMP monitor to answer. Default 30 s. */
  readonly connectTimeoutMs?: number;
  /** Binary to run; default `findQemu()`. */
  readonly qemuPath?: string;
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

const MAX_CAPTURE_CHARS = 1 << 20;
/** How long an incoming migration may show no status at all before loadFromFile gives up. */
const NEVER_STARTED_MS = 10_000;
const live = new Set<QemuProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test that throws past its finally block must still not leave QEMU behind.
  process.once('exit', () => {
    for (const qemu of live) qemu.killNow();
  });
}

/** Spawns QEMU, connects QMP and returns the running process (or throws QemuStartError). */
export async function startQemu(options: StartQemuOptions): Promise<QemuProcess> {
  const qemuPath = options.qemuPath ?? findQemu();
  if (qemuPath === null) throw new QemuStartError(`${QEMU_BINARY} not found`, '');
  const dir = makeTempDir('livemig-qemu-');
  const qemu = new QemuProcess(qemuPath, options, dir);
  try {
    await qemu.connect(options.connectTimeoutMs ?? 30_000);
  } catch (error) {
    await qemu.stop();
    const stderr = qemu.stderr;
    throw new QemuStartError(`${options.name ?? 'qemu'} failed to start (${(error as Error).message})`, stderr);
  }
  return qemu;
}

export class QemuProcess {
  readonly dir: string;
  readonly socketPath: string;
  readonly name: string;
  /** The QEMU command line as spawned (without the `timeout` wrapper). */
  readonly commandLine: readonly string[];
  private readonly child: ChildProcess;
  private readonly pidfilePath: string;
  private readonly watchdog: NodeJS.Timeout;
  private client: QmpClient | null = null;
  private stderrText = '';
  private exitStatus: ExitStatus | null = null;
  private readonly exitPromise: Promise<ExitStatus>;
  private readonly closePromise: Promise<void>;
  private stopPromise: Promise<void> | null = null;
  private fileSerial = 0;
  /** True when QEMU runs under coreutils' `timeout` (then `pid` is the wrapper's). */
  private readonly wrapped: boolean;
  /** True when the watchdog had to kill QEMU. */
  watchdogFired = false;

  constructor(qemuPath: string, options: StartQemuOptions, dir: string) {
    this.dir = dir;
    this.name = options.name ?? 'qemu';
    this.socketPath = join(dir, 'qmp.sock');
    this.pidfilePath = join(dir, 'qemu.pid');
    this.commandLine = [qemuPath, ...options.args, '-qmp', `unix:${this.socketPath},server=on,wait=off`, '-pidfile', this.pidfilePath];
    const watchdogMs = options.watchdogMs ?? 120_000;
    const timeoutPath = searchPath('timeout');
    this.wrapped = timeoutPath !== null;
    const [file, ...argv] = timeoutPath === null
      ? this.commandLine
      : [timeoutPath, '-k', '3', String(Math.ceil(watchdogMs / 1000) + 10), ...this.commandLine];
    this.child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const capture = (chunk: Buffer): void => {
      if (this.stderrText.length < MAX_CAPTURE_CHARS) this.stderrText += chunk.toString('utf8');
    };
    this.child.stdout?.on('data', capture);
    this.child.stderr?.on('data', capture);
    this.exitPromise = new Promise<ExitStatus>((resolveExit) => {
      const done = (status: ExitStatus): void => {
        if (this.exitStatus !== null) return;
        this.exitStatus = status;
        clearTimeout(this.watchdog);
        live.delete(this);
        resolveExit(status);
      };
      this.child.once('exit', (code, signal) => done({ code, signal }));
      this.child.once('error', (error) => {
        this.stderrText += `spawn failed: ${error.message}\n`;
        done({ code: null, signal: null });
      });
    });
    this.closePromise = new Promise<void>((resolveClose) => this.child.once('close', () => resolveClose()));
    this.watchdog = setTimeout(() => {
      this.watchdogFired = true;
      this.stderrText += `[harness] watchdog: killed after ${watchdogMs} ms\n`;
      this.killNow();
    }, watchdogMs);
    this.watchdog.unref();
    live.add(this);
    installExitHook();
  }

  /** PID of the spawned process (the `timeout` wrapper when one is used). */
  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** PID of QEMU itself, from its pidfile; null before QEMU wrote it. */
  get qemuPid(): number | null {
    try {
      const pid = Number.parseInt(readFileSync(this.pidfilePath, 'utf8').trim(), 10);
      return Number.isFinite(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  /** The QMP connection (throws before `connect` succeeded). */
  get qmp(): QmpClient {
    if (this.client === null) throw new QmpClosedError(`${this.name}: QMP is not connected`);
    return this.client;
  }

  /** Everything QEMU wrote to stderr and stdout so far. */
  get stderr(): string {
    return this.stderrText;
  }

  get running(): boolean {
    return this.exitStatus === null;
  }

  get exit(): ExitStatus | null {
    return this.exitStatus;
  }

  /** Resolves when the process has exited. */
  exited(): Promise<ExitStatus> {
    return this.exitPromise;
  }

  async connect(timeoutMs: number): Promise<void> {
    const failed = this.exitPromise.then(() => {
      throw new QmpClosedError(`QEMU exited (${JSON.stringify(this.exitStatus)}) before QMP answered`);
    });
    this.client = await Promise.race([
      QmpClient.connectUnix(this.socketPath, { timeoutMs, isAlive: () => this.running }),
      failed,
    ]);
  }

  /**
   * SIGKILL to QEMU, synchronously. With the `timeout` wrapper, QEMU's own PID (pidfile) is
   * killed and the wrapper then reaps it and exits by itself; were the wrapper killed first,
   * QEMU would be left as an orphan (or an unreaped zombie). Before the pidfile exists the
   * wrapper gets SIGTERM, which it forwards, escalating to SIGKILL after 3 s on its own.
   */
  killNow(): void {
    if (!this.running) return;
    const qemuPid = this.qemuPid;
    const [pid, signal]: [number, NodeJS.Signals] = !this.wrapped
      ? [this.pid, 'SIGKILL']
      : qemuPid !== null ? [qemuPid, 'SIGKILL'] : [this.pid, 'SIGTERM'];
    if (pid <= 0) return;
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }

  /** Stops QEMU (quit → SIGTERM → SIGKILL), waits for it and removes the temp dir. Idempotent. */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async waitExit(timeoutMs: number): Promise<boolean> {
    if (this.exitStatus !== null) return true;
    return settlesWithin(this.exitPromise, timeoutMs);
  }

  private async doStop(): Promise<void> {
    if (this.running && this.client !== null && !this.client.closed) {
      await this.client.execute('quit', undefined, 3_000).catch(() => undefined);
    }
    if (!(await this.waitExit(3_000))) {
      try {
        process.kill(this.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      if (!(await this.waitExit(5_000))) {
        this.killNow();
        if (!(await this.waitExit(5_000))) {
          try {
            process.kill(this.pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
          await this.waitExit(5_000);
        }
      }
    }
    this.client?.close();
    clearTimeout(this.watchdog);
    // Let the stdio pipes drain so stderr is complete.
    await settlesWithin(this.closePromise, 500);
    live.delete(this);
    removeTempDir(this.dir);
  }

  private tempFile(stem: string): string {
    this.fileSerial++;
    return join(this.dir, `${stem}-${this.fileSerial}.bin`);
  }

  /** Reads guest-physical memory [addr, addr+size) through QMP `pmemsave`. */
  async pmemsave(addr: number, sizeBytes: number): Promise<Uint8Array> {
    const file = this.tempFile('pmem');
    try {
      await this.qmp.execute('pmemsave', { val: addr, size: sizeBytes, filename: file });
      return new Uint8Array(readFileSync(file));
    } finally {
      if (existsSync(file)) unlinkSync(file);
    }
  }

  /**
   * Migrates this QEMU into `path` (`migrate exec:cat > FILE`) and waits for `completed`.
   * QEMU reports completion before it has closed the pipe to `cat`, so this also waits until
   * the file stops growing. Throws QemuMigrationError on failure or cancel.
   */
  async migrateToFile(path: string, timeoutMs = 60_000): Promise<MigrationInfo> {
    if (!isAbsolute(path)) throw new RangeError(`migrateToFile needs an absolute path, got ${path}`);
    await this.qmp.execute('migrate', { uri: `exec:cat > ${shellQuote(path)}` });
    let info: MigrationInfo;
    try {
      info = await this.qmp.waitMigration(['completed', 'failed', 'cancelled'], timeoutMs);
    } catch (error) {
      throw new QemuMigrationError(`${this.name}: outgoing migration: ${(error as Error).message}`, null, null, this.stderr);
    }
    if (info.status !== 'completed') {
      throw new QemuMigrationError(
        `${this.name}: outgoing migration ${info.status}: ${info['error-desc'] ?? '(no error-desc)'}`,
        info.status ?? null,
        info['error-desc'] ?? null,
        this.stderr,
      );
    }
    await waitForFileStable(path, 10_000);
    return info;
  }

  /**
   * Loads `path` into this QEMU (started with `-incoming defer`) through `migrate-incoming
   * exec:cat FILE` and waits until the incoming side is done: query-migrate says `completed`,
   * or the runstate has left `inmigrate` while the migration is no longer active. A failed
   * load makes QEMU 7.2 exit with status 1; the error then carries its stderr.
   */
  async loadFromFile(path: string, timeoutMs = 60_000): Promise<{ readonly migration: MigrationInfo; readonly runstate: string }> {
    if (!isAbsolute(path)) throw new RangeError(`loadFromFile needs an absolute path, got ${path}`);
    // QEMU 7.2 waits for the exec channel to become readable (G_IO_IN only): a command that
    // exits without output (missing or empty file) leaves it in `inmigrate` forever with
    // query-migrate `{}`. Check the file first, and give up early if nothing ever starts.
    const sizeBytes = existsSync(path) ? statSync(path).size : -1;
    if (sizeBytes <= 0) {
      throw new QemuMigrationError(`${this.name}: cannot load ${path}: ${sizeBytes < 0 ? 'no such file' : 'file is empty'}`, null, null, this.stderr);
    }
    const deadline = Date.now() + timeoutMs;
    const startDeadline = Date.now() + Math.min(timeoutMs, NEVER_STARTED_MS);
    let last: MigrationInfo = {};
    try {
      await this.qmp.execute('migrate-incoming', { uri: `exec:cat ${shellQuote(path)}` });
      for (;;) {
        last = await this.qmp.execute<MigrationInfo>('query-migrate');
        if (last.status === 'failed' || last.status === 'cancelled') break;
        const runstate = (await this.qmp.execute<{ status: string }>('query-status')).status;
        if (last.status === 'completed') return { migration: last, runstate };
        if (runstate !== 'inmigrate' && last.status !== 'active' && last.status !== 'setup') {
          // The load can finish between the two queries (a small stream loads in a few ms):
          // ask again so the caller sees the status that goes with this runstate.
          return { migration: await this.qmp.execute<MigrationInfo>('query-migrate'), runstate };
        }
        if (last.status === undefined && Date.now() >= startDeadline) {
          throw new QemuMigrationError(`${this.name}: incoming migration never started (query-migrate still {} after ${NEVER_STARTED_MS} ms)`, null, null, this.stderr);
        }
        if (Date.now() >= deadline) {
          throw new QemuMigrationError(`${this.name}: incoming migration not done within ${timeoutMs} ms (status ${last.status ?? 'none'}, runstate ${runstate})`, last.status ?? null, null, this.stderr);
        }
        await sleep(25);
      }
    } catch (error) {
      if (error instanceof QemuMigrationError) throw error;
      if (!(error instanceof QmpClosedError)) throw error;
      // QEMU exited (a failed incoming migration makes 7.2 exit 1): report its stderr.
      const exit = (await this.waitExit(5_000)) ? this.exitStatus : null;
      await settlesWithin(this.closePromise, 500);
      throw new QemuMigrationError(
        `${this.name}: incoming migration failed: QEMU exited (${describeExit(exit)})`,
        'failed',
        null,
        this.stderr,
      );
    }
    throw new QemuMigrationError(
      `${this.name}: incoming migration ${last.status}: ${last['error-desc'] ?? '(no error-desc)'}`,
      last.status ?? null,
      last['error-desc'] ?? null,
      this.stderr,
    );
  }
}
