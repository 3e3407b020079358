/**
 * Differential transcripts: QMP input lines replayed against real QEMU 7.2 and against our
 * session over FakeVmController, compared line for line (event timestamps zeroed). The golden
 * outputs in qemu-transcript.golden.ts were recorded from QEMU 7.2.22 by qemu-transcript.test.ts
 * (which also holds the QEMU runner); the test checks ours against them always, and checks QEMU
 * against them when a QEMU binary is present.
 *
 * Inputs avoid what depends on the machine (versions, ports, timing of running migrations).
 */
import { drive } from './session-driver.test-util.ts';
import type { FakeVmOptions } from './fake-vm-controller.ts';

/** One transcript: a QEMU configuration, the matching fake, and the input lines. */
export interface TranscriptSpec {
  readonly name: string;
  /** Extra QEMU arguments after `-nodefaults -display none -m 16M`. */
  readonly qemuArgs: readonly string[];
  readonly fake: FakeVmOptions;
  readonly inputs: readonly string[];
}

/** Input → every line written in answer (events included, timestamps zeroed). */
export type TranscriptOutput = ReadonlyArray<{ readonly input: string; readonly output: readonly string[] }>;

const TIMESTAMP_RE = /"timestamp": \{"seconds": \d+, "microseconds": \d+\}/g;

/** Zeroes event timestamps so runs compare. */
export function normalizeLine(line: string): string {
  return line.replace(TIMESTAMP_RE, '"timestamp": {"seconds": 0, "microseconds": 0}');
}

/** Runs a transcript against a fresh driven session over FakeVmController. */
export function runOnFake(spec: TranscriptSpec): TranscriptOutput {
  const d = drive(spec.fake);
  return spec.inputs.map((input) => ({ input, output: d.send(input).map(normalizeLine) }));
}

/** The source text of qemu-transcript.golden.ts for `outputs` (by transcript name). */
export function renderGoldenModule(outputs: ReadonlyMap<string, TranscriptOutput>): string {
  const lines = [
    '/**',
    ' * Golden outputs of the differential transcripts, recorded from QEMU 7.2.22 (Debian',
    " * 1:7.2+dfsg-7+deb12u18+b3, qemu-system-x86_64) by qemu-transcript.test.ts's recorder: for each",
    ' * transcript, every input line with every line QEMU wrote in answer (event timestamps zeroed).',
    ' * Generated data, not edited by hand: `LIVEMIG_QMP_TRANSCRIPT_OUT=/tmp/golden.ts node',
    ' * scripts/run-tests.mjs qmp/qemu-transcript` writes a fresh copy from the local QEMU.',
    ' */',
    "import type { TranscriptOutput } from './qemu-transcript.test-util.ts';",
    '',
    'export const QEMU_7_2_TRANSCRIPTS: Readonly<Record<string, TranscriptOutput>> = {',
  ];
  for (const [name, steps] of outputs) {
    lines.push(`  ${JSON.stringify(name)}: [`);
    for (const step of steps) lines.push(`    { input: ${JSON.stringify(step.input)}, output: ${JSON.stringify(step.output)} },`);
    lines.push('  ],');
  }
  lines.push('};', '');
  return lines.join('\n');
}
