/**
 * Small process and file helpers of the harness: sleeping, shell quoting for QEMU's `exec:`
 * migration URIs (run by /bin/sh -c), describing an exit status, waiting until a file
 * written by another process has stopped growing, and a process's CPU time.
 */
import { readFileSync, statSync } from 'node:fs';

/** USER_HZ of /proc/PID/stat (100 on Linux everywhere this runs). */
const CLOCK_TICKS_PER_SEC = 100;

/**
 * CPU time of process `pid` so far (utime + stime from /proc/PID/stat, all threads), ms; NaN
 * where /proc is missing or the process is gone. Resolution 10 ms.
 */
export function processCpuMs(pid: number | null | undefined): number {
  if (pid === null || pid === undefined || pid <= 0) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SEC;
  } catch {
    return Number.NaN;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves true when `promise` settles within `ms`, else false; clears its timer either way. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Quotes one word for /bin/sh: single quotes, with embedded quotes spliced in. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** "exit code 1", "signal SIGKILL" or "still running". */
export function describeExit(status: { readonly code: number | null; readonly signal: string | null } | null): string {
  if (status === null) return 'still running';
  if (status.signal !== null) return `signal ${status.signal}`;
  return `exit code ${status.code}`;
}

function sizeOf(path: string): number | null {
  try {
    return statSync(path).size;
  } catch {
    return null;
  }
}

/**
 * Waits until `path` exists and its size has not changed for `quietMs`. Used after an
 * outgoing `exec:cat > FILE` migration, whose `cat` may still be flushing when QEMU reports
 * `completed`. Throws when the file does not exist or keep growing by the deadline.
 */
export async function waitForFileStable(path: string, timeoutMs: number, quietMs = 100): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = sizeOf(path);
  let stableSince = Date.now();
  for (;;) {
    await sleep(20);
    const now = sizeOf(path);
    if (now !== last) {
      last = now;
      stableSince = Date.now();
    } else if (now !== null && Date.now() - stableSince >= quietMs) {
      return now;
    }
    if (Date.now() >= deadline) {
      throw new Error(last === null ? `${path} was never created` : `${path} still changing after ${timeoutMs} ms`);
    }
  }
}
