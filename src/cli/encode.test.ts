// `livemig encode` run in-process: an encode → analyze round trip on a small random RAM image
// (ZERO and PAGE records, same bytes back), the option checks (exit 2), and, when QEMU 7.2 is
// installed, the printed command line's machine setup loading the stream into a real QEMU
// whose guest RAM then equals the image.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { countZeroPages, makeRandomRam, makeTempDir, removeTempDir } from '../harness/ram-image.ts';
import { startQemu } from '../harness/qemu.ts';
import type { QemuProcess } from '../harness/qemu.ts';
import { requireQemu } from '../harness/skip.ts';
import { cli, sha256 } from './cli.test-util.ts';

const MiB = 1024 * 1024;

async function withTemp(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = makeTempDir('livemig-encode-');
  try {
    await body(dir);
  } finally {
    removeTempDir(dir);
  }
}

test('encode then analyze: same RAM, ZERO records for the zero pages, summary counts', async () => {
  await withTemp(async (dir) => {
    const ram = makeRandomRam(2 * MiB, { seed: 0xc11_e0c0de, zeroPageEvery: 9, zeroPages: [1, 511] });
    const zero = countZeroPages(ram);
    assert.ok(zero > 50);
    const image = join(dir, 'guest.ram');
    const out = join(dir, 'guest.stream');
    writeFileSync(image, ram);
    const enc = await cli('encode', '--ram-image', image, '--block', 'lm.blk-1', '-o', out);
    assert.equal(enc.code, 0, enc.stderr);
    const written = statSync(out).size;
    assert.match(enc.stdout, new RegExp(`pages: 512: ${512 - zero} normal \\(PAGE records\\), ${zero} zero \\(ZERO records\\)`));
    assert.match(enc.stdout, new RegExp(`written: ${written.toLocaleString('en-US')} bytes`));
    assert.match(enc.stdout, new RegExp(`sha256 ${sha256(ram)}`));
    const encJson = await cli('encode', '--ram-image', image, '--block', 'lm.blk-1', '-o', out, '--json');
    assert.equal(encJson.code, 0, encJson.stderr);
    const summary = JSON.parse(encJson.stdout) as Record<string, unknown>;
    assert.deepEqual(
      [summary.normalPages, summary.zeroPages, summary.bytesWritten, summary.ramSha256, summary.block],
      [512 - zero, zero, written, sha256(ram), 'lm.blk-1'],
    );
    assert.match(String(summary.qemuLoadCommand), /^qemu-system-x86_64 -M none,memory-backend=lm\.blk-1 /);

    const an = await cli('analyze', '--json', out);
    assert.equal(an.code, 0, an.stdout);
    const json = JSON.parse(an.stdout) as {
      configuration: { machine: string };
      ramBlocks: Array<{ name: string; sizeBytes: number; normalPages: number; zeroPages: number; sha256: string }>;
      vmdescription: unknown;
    };
    assert.equal(json.configuration.machine, 'none');
    assert.deepEqual(json.ramBlocks, [
      { name: 'lm.blk-1', sizeBytes: 2 * MiB, normalPages: 512 - zero, zeroPages: zero, discardedPages: 0, pagesNeverSent: 0, sha256: sha256(ram) },
    ]);
    assert.notEqual(json.vmdescription, null);

    const extractDir = join(dir, 'x');
    assert.equal((await cli('analyze', out, '--extract-ram', extractDir)).code, 0);
    assert.ok(readFileSync(join(extractDir, 'lm.blk-1.ram')).equals(Buffer.from(ram)));
  });
});

test('encode checks its options: page multiple, block name, files (exit 2)', async () => {
  await withTemp(async (dir) => {
    const odd = join(dir, 'odd.ram');
    writeFileSync(odd, new Uint8Array(4096 + 1));
    const good = join(dir, 'good.ram');
    writeFileSync(good, new Uint8Array(8192));
    const out = join(dir, 'o.stream');
    const notMultiple = await cli('encode', '--ram-image', odd, '--block', 'ram', '-o', out);
    assert.equal(notMultiple.code, 2);
    assert.match(notMultiple.stderr, /not a positive multiple of the 4096-byte page/);
    const longName = await cli('encode', '--ram-image', good, '--block', 'b'.repeat(256), '-o', out);
    assert.equal(longName.code, 2);
    assert.match(longName.stderr, /at most 255/);
    assert.equal((await cli('encode', '--ram-image', good, '--block', 'b'.repeat(255), '-o', out)).code, 0);
    assert.equal((await cli('encode', '--ram-image', join(dir, 'missing.ram'), '--block', 'ram', '-o', out)).code, 2);
    assert.equal((await cli('encode', '--ram-image', good, '-o', out)).code, 2, 'missing --block');
    assert.equal((await cli('encode', '--ram-image', good, '--block', 'has space', '-o', out)).code, 2);
  });
});

test('QEMU 7.2 loads what encode writes, with the machine setup encode prints', { timeout: 120_000 }, async (t) => {
  if (requireQemu(t) === null) return;
  await withTemp(async (dir) => {
    const sizeBytes = 8 * MiB;
    const ram = makeRandomRam(sizeBytes, { seed: 0x10ad, zeroPageEvery: 5 });
    const image = join(dir, 'guest.ram');
    writeFileSync(image, ram);
    for (const block of ['ram', 'mem']) {
      const out = join(dir, `${block}.stream`);
      const enc = await cli('encode', '--ram-image', image, '--block', block, '-o', out);
      assert.equal(enc.code, 0, enc.stderr);
      const line = /^load it with: (.*)$/m.exec(enc.stdout)?.[1];
      assert.ok(line !== undefined, enc.stdout);
      // The printed command line, with -incoming defer instead of exec: so QMP drives the load.
      const args = line.split(' ').slice(1);
      const incoming = args.indexOf('-incoming');
      assert.ok(incoming > 0 && args[incoming + 1].startsWith("'exec:cat"));
      const qemuArgs = [...args.slice(0, incoming), '-incoming', 'defer'];
      let qemu: QemuProcess | null = null;
      try {
        qemu = await startQemu({ name: `encode-${block}`, args: qemuArgs, watchdogMs: 100_000 });
        const loaded = await qemu.loadFromFile(out, 60_000);
        assert.equal(loaded.migration.status, 'completed');
        const guest = await qemu.pmemsave(0, sizeBytes);
        assert.equal(sha256(guest), sha256(ram), `guest RAM after loading the '${block}' stream`);
      } finally {
        await qemu?.stop();
      }
    }
  });
});
