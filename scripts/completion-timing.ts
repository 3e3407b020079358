/**
 * When does a source's MIGRATION `completed` event arrive, against its own total-time and
 * downtime? Runs `-M none` precopy pairs (256 MiB pattern RAM, uncapped) with QEMU 7.2 and
 * with livemig (bin/livemig-qemu.js, both ends) through the harness, and prints per run: the
 * wall time from `migrate` to the source's completed event and to the destination's, the
 * source's total-time and downtime, and the source's events with their QMP timestamps (ms after
 * the source's `setup` event). Usage: node --import tsx scripts/completion-timing.ts [RUNS]
 */
import { fileURLToPath } from 'node:url';
import { rmSync } from 'node:fs';
import { runPrecopy, startMigrationPair } from '../src/harness/qemu-migrate.ts';
import { writePatternFile } from '../src/harness/ram-pattern.ts';
import { findQemu } from '../src/harness/qemu.ts';
import type { QmpEvent } from '../src/harness/qmp-client.ts';

const SIZE_BYTES = 256 * 1024 * 1024;
const runs = Number(process.argv[2] ?? '2');
const pattern = `/dev/shm/livemig-completion-timing-${process.pid}`;
const livemig = fileURLToPath(new URL('../bin/livemig-qemu.js', import.meta.url));
const qemu = findQemu();

function seconds(e: QmpEvent): number {
  return e.timestamp.seconds + e.timestamp.microseconds / 1e6;
}

function trail(events: readonly QmpEvent[]): string {
  const setup = events.find((e) => e.event === 'MIGRATION' && e.data?.status === 'setup');
  const base = setup === undefined ? 0 : seconds(setup);
  return events.map((e) => {
    const what = e.data?.status ?? e.data?.pass ?? '';
    return `${e.event}${what === '' ? '' : `/${String(what)}`}@${((seconds(e) - base) * 1000).toFixed(0)}`;
  }).join(' ');
}

writePatternFile(pattern, SIZE_BYTES);
try {
  for (let i = 0; i < runs; i++) {
    for (const [name, qemuPath] of [['qemu', qemu], ['livemig', livemig]] as const) {
      if (qemuPath === null) continue;
      const pair = await startMigrationPair({ sizeBytes: SIZE_BYTES, source: { kind: 'file', path: pattern }, qemuPath });
      try {
        const r = await runPrecopy(pair, SIZE_BYTES);
        console.log(`${name.padEnd(7)} completed event ${r.wallMs.toFixed(0)} ms, destination's ${r.endToEndMs.toFixed(0)} ms; ` +
          `total-time ${r.totalTimeMs} ms, downtime ${r.downtimeMs} ms`);
        console.log(`        ${trail(pair.source.qmp.events)}`);
      } finally {
        await pair.stop();
      }
    }
  }
} finally {
  rmSync(pattern, { force: true });
}
