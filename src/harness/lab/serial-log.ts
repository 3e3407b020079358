/**
 * Reads a guest's growing serial log (QEMU `-serial file:PATH`): complete lines, each stamped
 * with the host time it was first seen, and the lab guest's machine-readable `GL <kind> k=v ...`
 * lines (guest-init.sh prints them) parsed into records.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { sleep } from '../process-util.ts';

/** One `GL` line: its kind, its key=value fields (numbers parsed), host time and text. */
export interface GlRecord {
  readonly kind: string;
  readonly fields: Readonly<Record<string, string | number>>;
  /** performance.now() when the line was read, ms. */
  readonly hostMs: number;
  readonly line: string;
}

export class SerialLog {
  /** Every complete line so far, with its host time (ms). */
  readonly lines: Array<{ readonly hostMs: number; readonly text: string }> = [];
  private offset = 0;
  private partial = '';

  constructor(readonly path: string) {}

  /** Reads what was appended since the last poll; returns the new lines. */
  poll(): Array<{ readonly hostMs: number; readonly text: string }> {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return [];
    }
    const chunks: Buffer[] = [];
    try {
      const buf = Buffer.alloc(1 << 16);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        chunks.push(Buffer.from(buf.subarray(0, n)));
      }
    } finally {
      closeSync(fd);
    }
    const text = this.partial + Buffer.concat(chunks).toString('utf8');
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    const now = performance.now();
    const fresh = parts.map((p) => ({ hostMs: now, text: p.replace(/\r$/, '') }));
    this.lines.push(...fresh);
    return fresh;
  }

  /** The parsed `GL` lines of `kind` (all kinds when absent). */
  gl(kind?: string): GlRecord[] {
    const out: GlRecord[] = [];
    for (const { hostMs, text } of this.lines) {
      if (!text.startsWith('GL ')) continue;
      const words = text.split(/\s+/);
      if (kind !== undefined && words[1] !== kind) continue;
      const fields: Record<string, string | number> = {};
      for (const kv of words.slice(2)) {
        const at = kv.indexOf('=');
        if (at <= 0) continue;
        const v = kv.slice(at + 1);
        fields[kv.slice(0, at)] = /^-?[0-9.]+$/.test(v) ? Number(v) : v;
      }
      out.push({ kind: words[1] ?? '', fields, hostMs, line: text });
    }
    return out;
  }

  /** Waits for a line matching `pattern`; throws on timeout or when `alive()` turns false. */
  async waitFor(pattern: RegExp, timeoutMs: number, alive: () => boolean): Promise<{ hostMs: number; text: string }> {
    const seen = this.lines.find((l) => pattern.test(l.text));
    if (seen !== undefined) return seen;
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const hit = this.poll().find((l) => pattern.test(l.text));
      if (hit !== undefined) return hit;
      if (!alive()) throw new Error(`QEMU exited while waiting for ${pattern} on ${this.path}`);
      await sleep(20);
    }
    throw new Error(`no ${pattern} on the serial console within ${timeoutMs} ms`);
  }
}
