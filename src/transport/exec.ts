/**
 * exec: channels, as QEMU runs them: the command goes to `/bin/sh -c`. An outgoing channel
 * writes the command's stdin (its stdout goes to /dev/null); an incoming one reads its stdout
 * (its stdin is /dev/null). Stderr is captured (up to 64 KiB) for error messages.
 *
 * The channel closes when the pipe has closed and the command has exited. A non-zero exit
 * status or a signal is reported as TRANSPORT_ERR_EXEC_STATUS carrying the stderr text, and it
 * takes precedence over the EPIPE a writer sees when the command dies early. `destroy` kills
 * the command (SIGTERM, then SIGKILL after a grace period): the shell runs in a process group
 * of its own, and that group (our child's PID, negated) is what gets the signal, so a pipeline
 * or a forked command cannot outlive the channel and hold its pipes open.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { StreamChannel, type StreamChannelParts } from './stream-channel.ts';
import { fromNodeError, TransportError, TRANSPORT_ERR_EXEC_SPAWN, TRANSPORT_ERR_EXEC_STATUS } from './errors.ts';

/** How much of the command's stderr is kept. */
const STDERR_CAPTURE_MAX_CHARS = 64 * 1024;
/** Time a destroyed command gets between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 2_000;

export type ExecDirection = 'outgoing' | 'incoming';

export interface ExecChannelOptions {
  /** Write-queue high-water mark (outgoing). */
  readonly highWaterMarkBytes?: number;
  /** The shell; default /bin/sh. */
  readonly shell?: string;
}

/** An exec: channel with access to the child for diagnostics. */
export class ExecChannel extends StreamChannel {
  readonly child: ChildProcess;
  private readonly stderrRef: { text: string };

  constructor(parts: StreamChannelParts, child: ChildProcess, stderrRef: { text: string }) {
    super(parts);
    this.child = child;
    this.stderrRef = stderrRef;
  }

  /** What the command wrote to stderr so far (first 64 KiB). */
  get stderr(): string {
    return this.stderrRef.text;
  }
}

function describeStatus(code: number | null, signal: NodeJS.Signals | null): string {
  return signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
}

/** Signals the process group led by our child `pid` (the shell and what it started). */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is gone already.
  }
}

/** Starts `command` under /bin/sh -c and returns the channel at once; spawn errors close it. */
export function spawnExecChannel(command: string, direction: ExecDirection, options: ExecChannelOptions = {}): ExecChannel {
  const child = spawn(options.shell ?? '/bin/sh', ['-c', command], {
    stdio: direction === 'outgoing' ? ['pipe', 'ignore', 'pipe'] : ['ignore', 'pipe', 'pipe'],
    // Its own process group, so that destroy also ends what the shell started (a pipeline).
    detached: true,
  });
  const remoteAddress = `exec:${command} (pid ${child.pid ?? '?'})`;
  const stderrRef = { text: '' };
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    if (stderrRef.text.length < STDERR_CAPTURE_MAX_CHARS) stderrRef.text += text.slice(0, STDERR_CAPTURE_MAX_CHARS - stderrRef.text.length);
  });
  // 'close' (not 'exit') so that stderr is complete when the status is reported.
  const completion = new Promise<TransportError | null>((resolve) => {
    child.once('error', (error) => {
      resolve(new TransportError(TRANSPORT_ERR_EXEC_SPAWN, `Cannot run ${remoteAddress}: ${error.message}`, { cause: error, sysCode: (error as NodeJS.ErrnoException).code }));
    });
    child.once('close', (code, signal) => {
      if (code === 0) {
        resolve(null);
        return;
      }
      const stderr = stderrRef.text.trim();
      const message = `Command ${remoteAddress} ${describeStatus(code, signal)}${stderr === '' ? '' : `: ${stderr}`}`;
      resolve(new TransportError(TRANSPORT_ERR_EXEC_STATUS, message, { detail: stderrRef.text }));
    });
  });
  const abort = (): void => {
    child.stdin?.destroy();
    child.stdout?.destroy();
    if (child.pid === undefined) return;
    signalGroup(child.pid, 'SIGTERM');
    // The shell may be gone while what it started still holds the pipes; the group gets it all.
    const timer = setTimeout(() => signalGroup(child.pid as number, 'SIGKILL'), KILL_GRACE_MS);
    timer.unref();
    child.once('close', () => clearTimeout(timer));
  };
  return new ExecChannel({
    remoteAddress,
    readable: direction === 'incoming' ? child.stdout : null,
    writable: direction === 'outgoing' ? child.stdin : null,
    mapError: (error) => fromNodeError(error, 'io', remoteAddress),
    completion,
    abort,
    highWaterMarkBytes: options.highWaterMarkBytes,
  }, child, stderrRef);
}
