/**
 * Byte-for-byte differential tests of the control plane against QEMU 7.2: every transcript
 * input (protocol errors, negotiation, visitor texts, migration command refusals, HMP output)
 * must produce exactly the lines QEMU 7.2.22 wrote (golden file), event timestamps aside.
 * With QEMU installed, the golden file itself is re-checked against the local binary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startQemu } from '../harness/qemu.ts';
import { requireQemu } from '../harness/skip.ts';
import { TRANSCRIPT_SPECS } from './qemu-transcript.inputs.ts';
import { QEMU_7_2_TRANSCRIPTS } from './qemu-transcript.golden.ts';
import { normalizeLine, renderGoldenModule, runOnFake, type TranscriptOutput, type TranscriptSpec } from './qemu-transcript.test-util.ts';

function isEvent(line: string): boolean {
  return line.startsWith('{"timestamp"');
}

class RawQmp {
  private buffer = '';
  private lines: string[] = [];
  private waiter: (() => void) | null = null;

  constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      let newline = this.buffer.indexOf('\n');
      while (newline >= 0) {
        this.lines.push(this.buffer.slice(0, newline).replace(/\r$/, ''));
        this.buffer = this.buffer.slice(newline + 1);
        newline = this.buffer.indexOf('\n');
      }
      this.waiter?.();
    });
  }

  /** Waits until `count` non-event lines are queued, or `ms` passes; returns and clears the queue. */
  async take(count: number, ms: number): Promise<string[]> {
    const deadline = Date.now() + ms;
    while (this.lines.filter((l) => !isEvent(l)).length < count && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 20);
      });
      this.waiter = null;
    }
    const out = this.lines;
    this.lines = [];
    return out;
  }

  write(line: string): void {
    this.socket.write(`${line}\n`);
  }
}

/** Runs a transcript against real QEMU (which must be installed). */
async function runOnQemu(spec: TranscriptSpec): Promise<TranscriptOutput> {
  const dir = mkdtempSync(join(tmpdir(), 'livemig-qmp-diff-'));
  const rawPath = join(dir, 'raw.sock');
  const qemu = await startQemu({
    name: `transcript-${spec.name}`,
    args: ['-nodefaults', '-display', 'none', '-m', '16M', ...spec.qemuArgs, '-qmp', `unix:${rawPath},server=on,wait=off`],
    watchdogMs: 60_000,
  });
  const socket = connect(rawPath);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const raw = new RawQmp(socket);
    await raw.take(1, 5000);
    const out: Array<{ input: string; output: string[] }> = [];
    for (const input of spec.inputs) {
      raw.write(input);
      const blank = /^[ \t\r]*$/.test(input);
      const lines = await raw.take(blank ? 0 : 1, blank ? 100 : 5000);
      // Events that trail the reply (STOP after a migration's reply) are collected too.
      lines.push(...(await raw.take(0, 30)));
      out.push({ input, output: lines.map(normalizeLine) });
    }
    return out;
  } finally {
    socket.destroy();
    await qemu.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function assertSameTranscript(actual: TranscriptOutput, expected: TranscriptOutput, who: string): void {
  assert.equal(actual.length, expected.length, `${who}: step count`);
  for (let i = 0; i < expected.length; i++) {
    assert.equal(actual[i].input, expected[i].input, `${who}: input ${i}`);
    assert.deepEqual(actual[i].output, expected[i].output, `${who}: reply to ${expected[i].input}`);
  }
}

for (const spec of TRANSCRIPT_SPECS) {
  test(`ours matches QEMU 7.2 byte for byte: ${spec.name} (${spec.inputs.length} inputs)`, () => {
    const golden = QEMU_7_2_TRANSCRIPTS[spec.name];
    assert.ok(golden !== undefined, `no golden transcript for ${spec.name}`);
    assertSameTranscript(runOnFake(spec), golden, 'livemig');
  });
}

test('the golden transcripts still match the local QEMU', { timeout: 240_000 }, async (t) => {
  if (requireQemu(t) === null) return;
  const recorded = new Map<string, TranscriptOutput>();
  for (const spec of TRANSCRIPT_SPECS) recorded.set(spec.name, await runOnQemu(spec));
  const out = process.env.LIVEMIG_QMP_TRANSCRIPT_OUT;
  if (out !== undefined && out !== '') writeFileSync(out, renderGoldenModule(recorded));
  for (const spec of TRANSCRIPT_SPECS) {
    assertSameTranscript(recorded.get(spec.name) ?? [], QEMU_7_2_TRANSCRIPTS[spec.name], `QEMU (${spec.name})`);
  }
});
