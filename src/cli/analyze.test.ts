// `livemig analyze` run in-process against the bundled QEMU 7.2 vectors and against broken
// inputs: decoded RAM checksums equal the manifest's, the postcopy capture's return path lists
// the page request QEMU made, PACKAGED contents are nested, --extract-ram writes the blocks,
// multifd channels are recognised and merge into the RAM, and errors give typed codes and the
// documented exit codes (1 decode error, 2 usage).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { makePatternRam, makeTempDir, removeTempDir } from '../harness/ram-image.ts';
import { cli, fooDeviceStream, manifest, sha256, vectorPath } from './cli.test-util.ts';
import { sanitizeBlockName } from './analyze-command.ts';

const MiB = 1024 * 1024;

interface JsonAnalysis {
  kind: string;
  version: number;
  source: { gzip: boolean; streamBytes: number };
  configuration: { machine: string };
  sections: Array<{ type: string; offset: number; sectionId: number; idstr: string; bytes: number; depth: number; normalPages?: number; zeroPages?: number }>;
  ramBlocks: Array<{ name: string; sizeBytes: number; normalPages: number; zeroPages: number; discardedPages: number; pagesNeverSent: number; sha256: string }>;
  commands: Array<{ offset: number; command: { kind: string; value?: number }; nested?: Array<{ kind: string; command?: { kind: string }; section?: { idstr: string } }> }>;
  devices: { fromSections: Array<{ idstr: string; state: Record<string, unknown> }>; fromVmdescription: Array<{ name: string; instanceId: number; version: number }> | null };
  eof: { offset: number } | null;
  vmdescription: { offset: number; lengthBytes: number } | null;
  error: { code: string; offset: number; section: { idstr: string } | null; explanation?: string } | null;
  returnPath: { messages: Array<Record<string, unknown>>; shutDown: boolean } | null;
  extracted: unknown;
}

async function analyzeJson(...args: string[]): Promise<{ code: number; json: JsonAnalysis }> {
  const r = await cli('analyze', '--json', ...args);
  return { code: r.code, json: JSON.parse(r.stdout) as JsonAnalysis };
}

function withTemp<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = makeTempDir('livemig-cli-');
  return body(dir).finally(() => removeTempDir(dir));
}

for (const name of ['none-16M', 'pattern-16M'] as const) {
  test(`analyze ${name}: RAM sha256, page counts, sections and VMDESCRIPTION devices match the manifest`, async () => {
    const m = manifest()[name];
    const { code, json } = await analyzeJson(vectorPath(`${name}.stream.gz`));
    assert.equal(code, 0);
    assert.equal(json.error, null);
    assert.equal(json.version, 3);
    assert.equal(json.source.gzip, true);
    assert.equal(json.source.streamBytes, m.size);
    assert.deepEqual(Object.fromEntries(json.ramBlocks.map((b) => [b.name, b.sizeBytes])), m.ram_blocks);
    assert.equal(json.ramBlocks.length, 1);
    assert.equal(json.ramBlocks[0].sha256, m.decoded_ram_sha256);
    assert.equal(json.ramBlocks[0].normalPages, m.normal_pages);
    assert.equal(json.ramBlocks[0].zeroPages, m.zero_pages);
    assert.equal(json.ramBlocks[0].pagesNeverSent, 0);
    const expected = m.sections.filter((s) => s.type !== 'CONFIGURATION' && s.type !== 'EOF').map((s) => [s.type, s.offset, s.idstr, s.bytes]);
    assert.deepEqual(json.sections.map((s) => [s.type, s.offset, s.idstr, s.bytes]), expected);
    assert.deepEqual(json.devices.fromVmdescription?.map((d) => `${d.name}/${d.instanceId} v${d.version}`), m.vmdescription_devices);
    assert.deepEqual(json.devices.fromSections.map((d) => d.idstr), ['timer', 'globalstate']);
    assert.equal(json.devices.fromSections[1].state.runstate, 'running');
    assert.equal(typeof json.devices.fromSections[0].state.cpu_ticks_offset, 'string', 'bigint fields become strings in JSON');
    assert.ok(json.eof !== null && json.vmdescription !== null);

    const text = await cli('analyze', vectorPath(`${name}.stream.gz`));
    assert.equal(text.code, 0);
    assert.match(text.stdout, new RegExp(m.decoded_ram_sha256));
    assert.match(text.stdout, /^result: ok, /m);
    assert.match(text.stdout, /VMDESCRIPTION at \d+ \(486 bytes of JSON, 2 devices\)/);
  });
}

test('analyze pattern-16M in odd 4099-byte chunks gives the same RAM', async () => {
  const { code, json } = await analyzeJson('--chunk-bytes', '4099', vectorPath('pattern-16M.stream.gz'));
  assert.equal(code, 0);
  assert.equal(json.ramBlocks[0].sha256, manifest()['pattern-16M'].decoded_ram_sha256);
});

test('analyze the postcopy capture with --return-path: REQ_PAGES_ID 0x3ff000 of mem, PACKAGED contents, RAM = pattern', async () => {
  const args = [vectorPath('postcopy-4M/conn0.src2dst.bin.gz'), '--return-path', vectorPath('postcopy-4M/conn0.dst2src.bin.gz')];
  const { code, json } = await analyzeJson(...args);
  assert.equal(code, 0);
  assert.equal(json.error, null);
  assert.ok(json.returnPath !== null);
  assert.deepEqual(json.returnPath.messages, [
    { offset: 0, kind: 'pong', value: 1 },
    { offset: 8, kind: 'pong', value: 2 },
    { offset: 16, kind: 'pong', value: 4 },
    { offset: 24, kind: 'pong', value: 3 },
    { offset: 32, kind: 'req-pages-id', blockName: 'mem', startBytes: 0x3ff000, lengthBytes: 4096 },
    { offset: 52, kind: 'shut', status: 0 },
  ]);
  assert.equal(json.returnPath.shutDown, true);
  assert.deepEqual(
    json.commands.map((c) => c.command.kind),
    ['open-return-path', 'ping', 'postcopy-advise', 'postcopy-ram-discard', 'ping', 'packaged', 'ping'],
  );
  const packaged = json.commands[5];
  assert.deepEqual(
    packaged.nested?.map((n) => (n.kind === 'command' ? n.command?.kind : `${n.kind} ${n.section?.idstr}`)),
    ['postcopy-listen', 'section timer', 'section globalstate', 'ping', 'postcopy-run'],
  );
  assert.equal(json.vmdescription, null, 'postcopy streams carry no VMDESCRIPTION');
  assert.equal(json.ramBlocks[0].sha256, sha256(makePatternRam(4 * MiB)));
  assert.equal(json.ramBlocks[0].discardedPages, 0x37d000 / 4096);
  assert.equal(json.ramBlocks[0].pagesNeverSent, 0, 'every discarded page was sent again');

  const text = await cli('analyze', ...args);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /REQ_PAGES_ID block 'mem' offset 0x3ff000 length 4096/);
  assert.match(text.stdout, /SHUT status 0 \(ok\)/);
  assert.match(text.stdout, /pings of the stream answered: 4 of 4/);
  assert.match(text.stdout, /POSTCOPY_RAM_DISCARD block 'mem': 0x83000\+0x37d000/);
  assert.match(text.stdout, /PACKAGED 201 bytes, containing:\n +\d+ +POSTCOPY_LISTEN/);
  assert.match(text.stdout, /PART x5 .*\n.*PACKAGED\n.*PACKAGED\n +PART x32 /, 'runs of PART sections collapse');
});

test('analyze --json prints exactly one JSON object with every part', async () => {
  const r = await cli('analyze', '--json', vectorPath('pattern-16M.stream.gz'));
  const json = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.deepEqual(Object.keys(json).sort(), [
    'chunkBytes', 'commands', 'configuration', 'decodedBytes', 'devices', 'eof', 'error', 'extracted', 'kind',
    'multifdChannels', 'notes', 'ramBlocks', 'returnPath', 'sections', 'source', 'version', 'vmdescription',
  ]);
  assert.equal(json.kind, 'stream');
  assert.equal(r.stderr, '');
});

test('analyze --extract-ram writes the rebuilt block, byte for byte', async () => {
  await withTemp(async (dir) => {
    const out = join(dir, 'ram-out');
    const r = await cli('analyze', vectorPath('pattern-16M.stream.gz'), '--extract-ram', out);
    assert.equal(r.code, 0, r.stderr);
    const file = join(out, 'mem.ram');
    assert.match(r.stdout, /'mem' -> .*mem\.ram \(16,777,216 bytes\)/);
    const bytes = readFileSync(file);
    assert.equal(bytes.length, 16 * MiB);
    assert.ok(bytes.equals(Buffer.from(makePatternRam(16 * MiB))));
  });
  assert.equal(sanitizeBlockName('/rom@etc/acpi/tables'), '_rom_etc_acpi_tables');
  assert.equal(sanitizeBlockName('pc.ram'), 'pc.ram');
  assert.equal(sanitizeBlockName('..'), '_..');
});

test('analyze recognises a multifd channel by its magic and merges channels into the main stream RAM', async () => {
  const one = await cli('analyze', vectorPath('multifd-4M/conn1.src2dst.bin.gz'));
  assert.equal(one.code, 0);
  assert.match(one.stdout, /multifd channel 0, uuid 0{32}/);
  assert.match(one.stdout, /packets: 7 \(3 SYNC\), 511 pages/);

  const main = vectorPath('multifd-4M/conn0.src2dst.bin.gz');
  const alone = await analyzeJson(main);
  assert.equal(alone.json.ramBlocks[0].pagesNeverSent, 1023, 'normal pages travel on the channels');
  const merged = await analyzeJson(main, '--multifd-channel', vectorPath('multifd-4M/conn1.src2dst.bin.gz'), '--multifd-channel', vectorPath('multifd-4M/conn2.src2dst.bin.gz'));
  assert.equal(merged.code, 0);
  assert.equal(merged.json.ramBlocks[0].pagesNeverSent, 0);
  assert.equal(merged.json.ramBlocks[0].sha256, sha256(makePatternRam(4 * MiB)));
});

test('a corrupt stream exits 1 and names the typed error, its offset and section', async () => {
  await withTemp(async (dir) => {
    const bytes = new Uint8Array(gunzipSync(readFileSync(vectorPath('pattern-16M.stream.gz'))));
    // The timer section (FULL at 16805996, 48 bytes) ends with its footer 0x7e + be32 id.
    const footerAt = 16805996 + 48 - 5;
    assert.equal(bytes[footerAt], 0x7e);
    bytes[footerAt] = 0x00;
    const path = join(dir, 'corrupt.stream');
    writeFileSync(path, bytes);
    const { code, json } = await analyzeJson(path);
    assert.equal(code, 1);
    assert.equal(json.error?.code, 'MIG_ERR_FOOTER_MISSING');
    assert.equal(json.error?.section?.idstr, 'timer');
    assert.equal(json.ramBlocks[0].sha256, manifest()['pattern-16M'].decoded_ram_sha256, 'RAM before the error is reported');
    const text = await cli('analyze', path);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /DECODE ERROR MIG_ERR_FOOTER_MISSING at byte \d+ in section 'timer' \(id 0\)/);
    assert.match(text.stderr, /MIG_ERR_FOOTER_MISSING/);

    const truncated = join(dir, 'truncated.stream');
    writeFileSync(truncated, bytes.subarray(0, 1_000_000));
    const t = await cli('analyze', truncated);
    assert.equal(t.code, 1);
    assert.match(t.stdout, /DECODE ERROR MIG_ERR_TRUNCATED at byte 1000000/);

    const junk = join(dir, 'junk.bin');
    writeFileSync(junk, 'not a stream at all');
    const j = await cli('analyze', junk);
    assert.equal(j.code, 1);
    assert.match(j.stdout, /DECODE ERROR MIG_ERR_BAD_MAGIC at byte 0/);
  });
});

test('an undescribed device section stops with the opaque-section error, explained; a VMDESCRIPTION decodes it', async () => {
  await withTemp(async (dir) => {
    const bare = join(dir, 'bare.stream');
    writeFileSync(bare, fooDeviceStream(false));
    const { code, json } = await analyzeJson(bare);
    assert.equal(code, 1);
    assert.equal(json.error?.code, 'MIG_ERR_OPAQUE_SECTION');
    assert.match(json.error?.explanation ?? '', /VMDESCRIPTION/);
    const text = await cli('analyze', bare);
    assert.match(text.stdout, /DECODE ERROR MIG_ERR_OPAQUE_SECTION .*'foo'/);
    assert.match(text.stdout, /^ {2}why: QEMU device sections are not self-describing/m);

    const described = join(dir, 'described.stream');
    writeFileSync(described, fooDeviceStream(true));
    const ok = await analyzeJson(described);
    assert.equal(ok.code, 0);
    assert.deepEqual(ok.json.devices.fromSections.map((d) => [d.idstr, d.state]), [['foo', { fields: { x: 42 }, subsections: {} }]]);
  });
});

test('usage errors exit 2: missing file, missing return-path file, bad option, no command', async () => {
  const missing = await cli('analyze', '/nonexistent/livemig/stream.bin');
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no such file/);
  assert.equal(missing.stdout, '');
  const rp = await cli('analyze', vectorPath('pattern-16M.stream.gz'), '--return-path', '/nonexistent/rp.bin');
  assert.equal(rp.code, 2);
  assert.equal((await cli('analyze', '--chunk-bytes', '0', vectorPath('pattern-16M.stream.gz'))).code, 2);
  assert.equal((await cli('analyze')).code, 2);
  assert.equal((await cli('frobnicate')).code, 2);
  assert.equal((await cli('--help')).code, 0);
});

test('past --max-ram the RAM is not rebuilt: counts stay, sha256 and extraction are refused with a note', async () => {
  await withTemp(async (dir) => {
    const { code, json } = await analyzeJson(vectorPath('pattern-16M.stream.gz'), '--max-ram', '8M', '--extract-ram', join(dir, 'x'));
    assert.equal(code, 1, 'an extraction that could not be done fails');
    assert.equal(json.error, null);
    assert.equal(json.ramBlocks[0].sha256, null);
    assert.equal(json.ramBlocks[0].normalPages, 4095);
    assert.equal(json.ramBlocks[0].pagesNeverSent, 0);
    assert.match((json as unknown as { notes: string[] }).notes.join('\n'), /RAM content not rebuilt: .* more than the 8\.00 MiB limit/);
    assert.ok(!existsSync(join(dir, 'x', 'mem.ram')));
  });
});

test('a truncated gzip file exits 1 with the gzip problem named', async () => {
  await withTemp(async (dir) => {
    const cut = join(dir, 'cut.stream.gz');
    writeFileSync(cut, readFileSync(vectorPath('pattern-16M.stream.gz')).subarray(0, 20_000));
    const r = await cli('analyze', cut);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /gzip data is corrupt or truncated/);
  });
});
