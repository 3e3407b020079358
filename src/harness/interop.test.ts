/**
 * Interop acceptance tests of the stream codec against a real qemu-system-x86_64 7.2:
 *   a. a stream our encoder writes loads into QEMU, whose guest RAM then equals the source;
 *   b. a stream QEMU writes for a block name and size that no test vector has decodes to the
 *      exact RAM of its memory-backend-file and the exact block list;
 *   c. a `-M pc` stream (several RAM blocks, dozens of device sections) decodes with the
 *      VMDESCRIPTION-driven device decoder, and fails as opaque without it.
 * They need QEMU: skipped (with a printed reason) on a machine without it, failing in CI.
 * They live in the harness layer because the layer rule (scripts/check-layers.mjs) lets
 * harness import format but not format import harness, test files included.
 * Every QEMU runs under a watchdog and is stopped in a finally block; temp files are removed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../format/errors.ts';
import { decodeStream } from '../format/stream-decoder.ts';
import { encodePrecopyStream } from '../format/precopy-stream.ts';
import { MIG_ERR_OPAQUE_SECTION } from '../format/stream-errors.ts';
import { findVmDescription } from '../format/vmdesc.ts';
import { createVmDescDeviceDecoder } from '../format/vmdesc-decoder.ts';
import { startQemu, type QemuProcess } from './qemu.ts';
import { countZeroPages, makeRandomRam, makeTempDir, noneMachineWithFileArgs, removeTempDir, sha256Hex, writeRamFile } from './ram-image.ts';
import { requireQemu } from './skip.ts';
import { StreamCapture } from './stream-capture.ts';

const MiB = 1024 * 1024;
const BASE_ARGS = ['-nodefaults', '-display', 'none'];
const TEST_TIMEOUT_MS = 180_000;
const QEMU_WATCHDOG_MS = 150_000;

/** Runs `body` with a temp dir and a list that collects started QEMUs; all cleaned up after. */
async function withRig(body: (dir: string, started: QemuProcess[]) => Promise<void>): Promise<void> {
  const dir = makeTempDir('livemig-interop-');
  const started: QemuProcess[] = [];
  try {
    await body(dir, started);
  } finally {
    for (const qemu of started) await qemu.stop();
    removeTempDir(dir);
  }
}

async function start(started: QemuProcess[], name: string, args: readonly string[]): Promise<QemuProcess> {
  const qemu = await startQemu({ name, args, watchdogMs: QEMU_WATCHDOG_MS });
  started.push(qemu);
  return qemu;
}

test('a: a stream from our encoder loads into QEMU 7.2 -M none and pmemsave returns the same RAM', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (requireQemu(t) === null) return;
  const ram = makeRandomRam(16 * MiB, { seed: 0x5eed_a001, zeroPageEvery: 11, zeroPages: [1, 2, 4095] });
  assert.ok(countZeroPages(ram) > 300, 'the image must exercise ZERO records');
  const stream = encodePrecopyStream({ machine: 'none', blocks: [{ name: 'ram', bytes: ram }] });

  // Our own decoder agrees with what we are about to send.
  const capture = new StreamCapture();
  decodeStream(stream, capture);
  assert.deepEqual(capture.blockList(), [{ name: 'ram', sizeBytes: 16 * MiB }]);
  assert.equal(sha256Hex(capture.blockBytes('ram')), sha256Hex(ram));

  await withRig(async (dir, started) => {
    const streamPath = join(dir, 'encoded.stream');
    writeFileSync(streamPath, stream);
    const qemu = await start(started, 'destination', ['-M', 'none', '-m', '16M', ...BASE_ARGS, '-incoming', 'defer']);
    const loaded = await qemu.loadFromFile(streamPath, 60_000);
    assert.equal(loaded.migration.status, 'completed');
    // globalstate carried `running`, and the destination was started without -S.
    assert.equal(loaded.runstate, 'running');
    const guest = await qemu.pmemsave(0, 16 * MiB);
    assert.equal(guest.length, 16 * MiB);
    assert.equal(sha256Hex(guest), sha256Hex(ram));
    assert.doesNotMatch(qemu.stderr, /Expected vmdescription section/);
  });
});

test('b: a stream QEMU writes for an unseen block name and size decodes to the exact RAM and block list', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (requireQemu(t) === null) return;
  // A name and size that appear in no test vector (vectors use `ram`/`mem`, 4 and 16 MiB).
  const blockName = 'lm-odd_blk.7';
  const sizeBytes = 20 * MiB;
  const manifest = readFileSync(new URL('../../testdata/qemu-7.2/manifest.json', import.meta.url), 'utf8');
  assert.ok(!manifest.includes(blockName) && !manifest.includes(`"total": ${sizeBytes}`), 'block name/size must be new');

  const ram = makeRandomRam(sizeBytes, { seed: 0x0dd_b10c, zeroPageEvery: 13, zeroPages: [0, 5119] });
  await withRig(async (dir, started) => {
    const memPath = writeRamFile(join(dir, 'source.ram'), ram);
    const args = [...noneMachineWithFileArgs({ id: blockName, sizeBytes, memPath }), ...BASE_ARGS, '-S'];
    const source = await start(started, 'source', args);
    const streamPath = join(dir, 'qemu.stream');
    const info = await source.migrateToFile(streamPath, 60_000);
    assert.equal(info.ram?.total, sizeBytes);

    const capture = new StreamCapture();
    decodeStream(new Uint8Array(readFileSync(streamPath)), capture);
    assert.deepEqual(capture.blockList(), [{ name: blockName, sizeBytes }]);
    const fileNow = new Uint8Array(readFileSync(memPath));
    assert.equal(sha256Hex(fileNow), sha256Hex(ram), 'QEMU must not have changed its RAM file');
    assert.equal(sha256Hex(capture.blockBytes(blockName)), sha256Hex(fileNow));
    // QEMU sends all-zero pages as ZERO records and the rest as PAGE records, each page once.
    assert.equal(capture.zeroRecords, countZeroPages(ram));
    assert.equal(capture.pageRecords + capture.zeroRecords, sizeBytes / 4096);
    assert.deepEqual(capture.devices.map((d) => d.idstr), ['timer', 'globalstate']);
  });
});

/** RAM blocks of `-M pc -nodefaults -m 128M` on 7.2, in QEMU's list order (facts §2.3). */
const PC_BLOCKS = [
  { name: 'pc.ram', sizeBytes: 128 * MiB },
  { name: '/rom@etc/acpi/tables', sizeBytes: 131072 },
  { name: 'pc.bios', sizeBytes: 262144 },
  { name: 'pc.rom', sizeBytes: 131072 },
  { name: '/rom@etc/table-loader', sizeBytes: 4096 },
  { name: '/rom@etc/acpi/rsdp', sizeBytes: 4096 },
];

test('c: a -M pc stream decodes with the VMDESCRIPTION device decoder and is opaque without it', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (requireQemu(t) === null) return;
  await withRig(async (dir, started) => {
    const source = await start(started, 'pc-source', ['-M', 'pc', '-nodefaults', '-m', '128M', '-S', '-accel', 'tcg', '-display', 'none']);
    const streamPath = join(dir, 'pc.stream');
    await source.migrateToFile(streamPath, 90_000);
    const bytes = new Uint8Array(readFileSync(streamPath));

    const found = findVmDescription(bytes);
    assert.ok(found !== null, 'a precopy stream from QEMU ends with a VMDESCRIPTION');
    const capture = new StreamCapture();
    decodeStream(bytes, capture, { deviceDecoder: createVmDescDeviceDecoder(found.description) });

    assert.deepEqual(capture.blockList(), PC_BLOCKS);
    const decoded = capture.devices.map((d) => `${d.idstr}/${d.instanceId}`);
    const described = found.description.devices.map((d) => `${d.name}/${d.instanceId}`);
    assert.deepEqual(decoded, described, 'one decoded device section per VMDESCRIPTION entry, in order');
    const beyond = capture.devices.filter((d) => d.idstr !== 'timer' && d.idstr !== 'globalstate');
    assert.ok(beyond.length >= 10, `expected many device sections, got ${beyond.length}`);
    for (const name of ['cpu', 'apic', 'i8259', 'mc146818rtc', 'fw_cfg', '0000:00:00.0/I440FX']) {
      const device = beyond.find((d) => d.idstr === name);
      assert.ok(device !== undefined, `device section ${name} decoded`);
      const state = device.state as { fields?: Record<string, unknown> };
      assert.ok(state !== null && typeof state === 'object' && state.fields !== undefined, `${name} decoded into fields`);
      assert.ok(Object.keys(state.fields).length > 0, `${name} has named fields`);
    }
    const ends = capture.records.filter((r) => r.kind === 'eof' || r.kind === 'vmdescription').map((r) => r.kind);
    assert.deepEqual(ends, ['eof', 'vmdescription']);

    assert.throws(
      () => decodeStream(bytes, new StreamCapture()),
      (error: unknown) => error instanceof FormatError && error.code === MIG_ERR_OPAQUE_SECTION,
    );
  });
});
