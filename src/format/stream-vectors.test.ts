// The decoder and the precopy encoder against real QEMU 7.2 streams from testdata/qemu-7.2:
// decoded RAM checksums, page counts and section lists from manifest.json, the postcopy
// capture's command sequence and RAM, the multifd main stream, and encodePrecopyStream's
// output compared with what QEMU wrote.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readVector } from '../testing/testdata.ts';
import { createHash } from 'node:crypto';
import { StreamDecoder, decodeStream } from './stream-decoder.ts';
import { encodePrecopyStream, precopyVmdescriptionJson } from './precopy-stream.ts';
import type { RamBlockRef, StreamRecord, StreamSink } from './stream-types.ts';


interface ManifestStream {
  size: number;
  sections: Array<Record<string, unknown>>;
  zero_pages: number;
  normal_pages: number;
  decoded_ram_sha256: string;
  ram_blocks: Record<string, number>;
  vmdescription_devices: string[];
}
const manifest = JSON.parse(new TextDecoder().decode(readVector('qemu-7.2/manifest.json'))) as Record<string, ManifestStream>;

/** Decodes into RAM buffers (one per block) and rebuilds the manifest's section list. */
class RamImageSink implements StreamSink {
  readonly records: StreamRecord[] = [];
  readonly blocks: Uint8Array[] = [];
  readonly sections: Array<Record<string, unknown>> = [];
  zeroPages = 0;
  normalPages = 0;
  private sectionZero = 0;
  private sectionNormal = 0;

  record(r: StreamRecord): void {
    this.records.push(r);
    if (r.kind === 'ram-blocks' && this.blocks.length === 0) for (const b of r.blocks) this.blocks.push(new Uint8Array(b.usedLengthBytes));
    if (r.kind === 'configuration') this.sections.push({ type: 'CONFIGURATION', offset: r.offset, machine: r.configuration.machine });
    if (r.kind === 'eof' && r.depth === 0) this.sections.push({ type: 'EOF', offset: r.offset });
    if (r.kind === 'section-begin') {
      this.sectionZero = 0;
      this.sectionNormal = 0;
    }
    if (r.kind === 'section-end' && r.header.depth === 0) {
      const h = r.header;
      const s: Record<string, unknown> = { type: h.type.toUpperCase(), offset: h.offset, section_id: h.sectionId, idstr: h.idstr };
      if (h.type === 'start' || h.type === 'full') Object.assign(s, { instance_id: h.instanceId, version_id: h.versionId });
      if (this.sectionZero > 0) s.zero_pages = this.sectionZero;
      if (this.sectionNormal > 0) s.normal_pages = this.sectionNormal;
      s.bytes = r.lengthBytes;
      this.sections.push(s);
    }
  }

  ramPage(block: RamBlockRef, offsetBytes: number, data: Uint8Array): void {
    this.blocks[block.index].set(data, offsetBytes);
    this.normalPages++;
    this.sectionNormal++;
  }

  ramZero(block: RamBlockRef, offsetBytes: number, fill: number): void {
    this.blocks[block.index].fill(fill, offsetBytes, offsetBytes + 4096);
    this.zeroPages++;
    this.sectionZero++;
  }

  sha256(): string {
    const h = createHash('sha256');
    for (const b of this.blocks) h.update(b);
    return h.digest('hex');
  }
}

/** "page i = little-endian u32 i repeated 1024 times" over `sizeBytes`. */
function pattern(sizeBytes: number): Uint8Array {
  const out = new Uint8Array(sizeBytes);
  const words = new DataView(out.buffer);
  for (let i = 0; i < sizeBytes / 4; i++) words.setUint32(i * 4, i >>> 10, true);
  return out;
}

function vmdescDevices(sink: RamImageSink): string[] {
  const r = sink.records.find((x) => x.kind === 'vmdescription');
  assert.ok(r !== undefined && r.kind === 'vmdescription');
  const json = JSON.parse(r.json) as { devices: Array<{ name: string; instance_id: number; version: number }> };
  return json.devices.map((d) => `${d.name}/${d.instance_id} v${d.version}`);
}

for (const name of ['none-16M', 'pattern-16M'] as const) {
  test(`${name}: RAM sha256, page counts, sections and VMDESCRIPTION match the manifest`, () => {
    const m = manifest[name];
    const bytes = readVector(`qemu-7.2/${name}.stream`);
    assert.equal(bytes.length, m.size);
    const sink = new RamImageSink();
    decodeStream(bytes, sink);
    assert.equal(sink.sha256(), m.decoded_ram_sha256);
    assert.equal(sink.zeroPages, m.zero_pages);
    assert.equal(sink.normalPages, m.normal_pages);
    assert.deepEqual(sink.sections, m.sections);
    const blocks = sink.records.find((r) => r.kind === 'ram-blocks');
    assert.ok(blocks !== undefined && blocks.kind === 'ram-blocks');
    assert.deepEqual(Object.fromEntries(blocks.blocks.map((b) => [b.name, b.usedLengthBytes])), m.ram_blocks);
    assert.deepEqual(vmdescDevices(sink), m.vmdescription_devices);
  });
}

test('pattern-16M in 1 MiB and in odd 4099-byte chunks decodes to the same RAM', () => {
  const bytes = readVector('qemu-7.2/pattern-16M.stream');
  for (const chunkBytes of [1 << 20, 4099]) {
    const sink = new RamImageSink();
    const d = new StreamDecoder(sink);
    for (let at = 0; at < bytes.length; at += chunkBytes) d.push(bytes.subarray(at, at + chunkBytes));
    d.end();
    assert.equal(sink.sha256(), manifest['pattern-16M'].decoded_ram_sha256);
  }
});

test('postcopy-4M main stream: command sequence, package, RAM equal to the pattern', () => {
  const bytes = readVector('qemu-7.2/postcopy-4M/conn0.src2dst.bin');
  const sink = new RamImageSink();
  const d = new StreamDecoder(sink);
  for (let at = 0; at < bytes.length; at += 65536) d.push(bytes.subarray(at, at + 65536));
  d.end();
  const outline: string[] = [];
  for (const r of sink.records) {
    let item: string | null = null;
    if (r.kind === 'command') item = `${r.depth}:${r.command.kind}${r.command.kind === 'ping' ? ` ${r.command.value}` : ''}`;
    else if (r.kind === 'device') item = `${r.header.depth}:${r.header.idstr}`;
    else if (r.kind === 'section-begin' && r.header.idstr === 'ram') item = `${r.header.depth}:ram ${r.header.type}`;
    else if (r.kind === 'packaged-end' || r.kind === 'eof') item = r.kind;
    if (item !== null && item !== outline[outline.length - 1]) outline.push(item);
  }
  assert.deepEqual(outline, [
    '0:open-return-path',
    '0:ping 1',
    '0:postcopy-advise',
    '0:ram start',
    '0:ram part',
    '0:postcopy-ram-discard',
    '0:ping 2',
    '0:packaged',
    '1:postcopy-listen',
    '1:timer',
    '1:globalstate',
    '1:ping 3',
    '1:postcopy-run',
    'packaged-end',
    '0:ping 4',
    '0:ram part',
    '0:ram end',
    'eof',
  ]);
  const discard = sink.records.find((r) => r.kind === 'command' && r.command.kind === 'postcopy-ram-discard');
  assert.deepEqual(discard, {
    kind: 'command',
    command: { kind: 'postcopy-ram-discard', blockName: 'mem', ranges: [{ startBytes: 0x83000, lengthBytes: 0x37d000 }] },
    offset: 533725,
    depth: 0,
  });
  const packaged = sink.records.find((r) => r.kind === 'command' && r.command.kind === 'packaged');
  assert.deepEqual(packaged, { kind: 'command', command: { kind: 'packaged', lengthBytes: 0xc9 }, offset: 533761, depth: 0 });
  assert.equal(sink.blocks.length, 1);
  assert.equal(sink.zeroPages + sink.normalPages, 1024);
  assert.ok(Buffer.from(sink.blocks[0]).equals(Buffer.from(pattern(4 << 20))));
  assert.equal(d.offsetBytes, bytes.length);
});

test('multifd-4M main stream decodes (one ZERO page; normal pages travel on the channels)', () => {
  const sink = new RamImageSink();
  decodeStream(readVector('qemu-7.2/multifd-4M/conn0.src2dst.bin'), sink);
  assert.equal(sink.zeroPages, 1);
  assert.equal(sink.normalPages, 0);
  assert.deepEqual(
    sink.sections.map((s) => `${String(s.type)}@${String(s.offset)}`),
    ['CONFIGURATION@8', 'START@17', 'PART@67', 'END@98', 'FULL@116', 'FULL@164', 'EOF@298'],
  );
  assert.deepEqual(vmdescDevices(sink), ['timer/0 v2', 'globalstate/0 v1']);
});

test('encodePrecopyStream of 16 MiB of zeros equals the QEMU capture but for the timer offsets', () => {
  const captured = readVector('qemu-7.2/none-16M.stream');
  const ours = encodePrecopyStream({ machine: 'none', blocks: [{ name: 'ram', bytes: new Uint8Array(16 << 20) }] });
  assert.equal(ours.length, captured.length);
  const timerOffsets = [36990, 37014];
  const differing: number[] = [];
  for (let i = 0; i < ours.length; i++) if (ours[i] !== captured[i] && !(i >= timerOffsets[0] && i < timerOffsets[1])) differing.push(i);
  assert.deepEqual(differing, []);
  const json = new TextDecoder().decode(captured.subarray(captured.length - 486));
  assert.equal(precopyVmdescriptionJson(4096), json);
});

test('encodePrecopyStream of the pattern decodes to the manifest RAM with the same layout as QEMU', () => {
  const m = manifest['pattern-16M'];
  const ours = encodePrecopyStream({ machine: 'none', blocks: [{ name: 'mem', bytes: pattern(16 << 20) }] });
  assert.equal(ours.length, m.size);
  const sink = new RamImageSink();
  decodeStream(ours, sink);
  assert.equal(sink.sha256(), m.decoded_ram_sha256);
  assert.equal(sink.zeroPages, 1);
  assert.equal(sink.normalPages, 4095);
  assert.deepEqual(
    sink.sections.map((s) => s.type),
    m.sections.map((s) => s.type),
  );
});
