// Balloon migration state: the plain-object save/load, the `virtio-balloon-device` vmsd
// bytes against a hand-written fixture, the decoder's subsection rules and errors, DONE
// travelling to a destination, and the simplified virtio section wrapper.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader, fromHex, hex } from '../../lib/bytes.ts';
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_F_VERSION_1, featureBit } from '../virtio/constants.ts';
import { BalloonDevice } from './balloon-device.ts';
import {
  applyBalloonPayload,
  balloonDevicePayloadBytes,
  balloonPayloadFromState,
  decodeBalloonDevicePayload,
  loadBalloonState,
  saveBalloonState,
  type BalloonDevicePayload,
} from './balloon-vmstate.ts';
import { VIRTIO_BALLOON_F_FREE_PAGE_HINT } from './constants.ts';
import { HintStatus, PrecopyNotifyReason as R } from './free-page-hint.ts';
import { decodeVirtioBalloonSection, encodeVirtioBalloonSection } from './virtio-section.ts';

const RAM = 16 * 1024 * 1024;

function device(): BalloonDevice {
  const d = new BalloonDevice({ ramSizeBytes: RAM, freePageHint: true });
  d.setNegotiatedFeatures(d.offeredFeatures | featureBit(VIRTIO_F_VERSION_1));
  d.setDriverStatus(VIRTIO_CONFIG_S_DRIVER_OK);
  return d;
}

// Hand-written: num_pages 0x400, actual 0x100, the free-page-report subsection (cmd id
// 0x80000003, status DONE) and the page-poison subsection (0xaaaaaaaa).
const FIXTURE_HEX = [
  '00000400', // be32 num_pages
  '00000100', // be32 actual
  '05', // QEMU_VM_SUBSECTION
  '26', // cstr8 length 38: "virtio-balloon-device/free-page-report"
  '76697274696f2d62616c6c6f6f6e2d6465766963652f667265652d706167652d7265706f7274',
  '00000001', // version 1
  '80000003', // free_page_hint_cmd_id
  '00000003', // free_page_hint_status = DONE
  '05',
  '21', // cstr8 length 33: "virtio-balloon-device/page-poison"
  '76697274696f2d62616c6c6f6f6e2d6465766963652f706167652d706f69736f6e',
  '00000001',
  'aaaaaaaa', // poison_val
].join('');
const FIXTURE_PAYLOAD: BalloonDevicePayload = {
  numPages: 0x400,
  actualPages: 0x100,
  hint: { cmdId: 0x80000003, status: HintStatus.Done },
  poisonVal: 0xaaaaaaaa,
};

test('the vmsd payload matches the hand-written fixture both ways', () => {
  assert.equal(hex(balloonDevicePayloadBytes(FIXTURE_PAYLOAD)), FIXTURE_HEX);
  const reader = new ByteReader(fromHex(FIXTURE_HEX));
  assert.deepEqual(decodeBalloonDevicePayload(reader), FIXTURE_PAYLOAD);
  assert.equal(reader.remaining, 0);
});

test('subsections follow the negotiated features; absent ones keep the destination values', () => {
  const source = device();
  source.numPages = 7;
  const noHint = { ...saveBalloonState(source, [0, 0, 0, 0]), negotiatedFeatures: featureBit(VIRTIO_F_VERSION_1) };
  const payload = balloonPayloadFromState(noHint);
  assert.deepEqual(payload, { numPages: 7, actualPages: 0, hint: null, poisonVal: null });
  assert.equal(hex(balloonDevicePayloadBytes(payload)), '0000000700000000');
  const base = { ...saveBalloonState(device(), [0, 0, 0, 0]), freePageHintCmdId: 0x80000009, poisonVal: 5 };
  const merged = applyBalloonPayload(base, payload);
  assert.equal(merged.freePageHintCmdId, 0x80000009);
  assert.equal(merged.poisonVal, 5);
  assert.equal(merged.numPages, 7);
});

test('the decoder stops at a virtio/ subsection and refuses unknown or newer balloon subsections', () => {
  const tail = '05' + '15' + '76697274696f2f36346269745f6665617475726573'; // "virtio/64bit_features"
  const reader = new ByteReader(fromHex('0000000100000002' + tail));
  assert.deepEqual(decodeBalloonDevicePayload(reader), { numPages: 1, actualPages: 2, hint: null, poisonVal: null });
  assert.equal(reader.pos, 8);
  const unknown = '05' + '1a' + hex(new TextEncoder().encode('virtio-balloon-device/nope')) + '00000001';
  assert.throws(() => decodeBalloonDevicePayload(new ByteReader(fromHex('0000000100000002' + unknown))), {
    code: 'BALLOON_VMSTATE_ERR_UNKNOWN_SUBSECTION',
    message: "VMState subsection 'virtio-balloon-device/nope' not found",
  });
  const newer = FIXTURE_HEX.replace('0000000180000003', '0000000280000003');
  assert.throws(() => decodeBalloonDevicePayload(new ByteReader(fromHex(newer))), { code: 'BALLOON_VMSTATE_ERR_BAD_VERSION' });
  assert.throws(() => decodeBalloonDevicePayload(new ByteReader(fromHex(FIXTURE_HEX.slice(0, 60)))), { code: 'BALLOON_VMSTATE_ERR_TRUNCATED' });
});

test('save/load round trip of the plain state, including per-queue last_avail_idx', () => {
  const source = device();
  source.balloon(RAM / 2);
  source.writeConfig(4, new Uint8Array([0, 2, 0, 0]));
  source.writeConfig(12, new Uint8Array([0xaa, 0, 0, 0]));
  source.onPrecopyNotify(R.AfterBitmapSync, { vmRunning: true, postcopyRam: false });
  const state = saveBalloonState(source, [5, 6, 7, 65535]);
  assert.deepEqual(
    { ...state, negotiatedFeatures: String(state.negotiatedFeatures) },
    {
      numPages: 2048,
      actualPages: 512,
      freePageHintCmdId: 0x80000001,
      freePageHintStatus: HintStatus.Requested,
      poisonVal: 0xaa,
      negotiatedFeatures: String(source.negotiatedFeatures),
      lastAvailIdx: [5, 6, 7, 65535],
    },
  );
  const destination = device();
  destination.setNegotiatedFeatures(0n);
  assert.deepEqual(loadBalloonState(destination, state), [5, 6, 7, 65535]);
  assert.deepEqual(destination.captureFields(), source.captureFields());
  assert.throws(() => loadBalloonState(destination, { ...state, lastAvailIdx: [1] }), { code: 'BALLOON_ERR_BAD_STATE' });
  assert.throws(() => loadBalloonState(destination, { ...state, freePageHintStatus: 9 as HintStatus }), { code: 'BALLOON_ERR_BAD_STATE' });
  const plain = new BalloonDevice({ ramSizeBytes: RAM });
  assert.throws(() => loadBalloonState(plain, { ...state, lastAvailIdx: [0, 0, 0] }), { code: 'BALLOON_ERR_BAD_STATE' });
});

test('DONE set by the VM-stopped sync travels in the bytes and reaches the destination guest', () => {
  const source = device();
  source.onPrecopyNotify(R.AfterBitmapSync, { vmRunning: true, postcopyRam: false });
  source.onPrecopyNotify(R.BeforeBitmapSync, { vmRunning: false, postcopyRam: false });
  source.onPrecopyNotify(R.AfterBitmapSync, { vmRunning: false, postcopyRam: false });
  const bytes = balloonDevicePayloadBytes(balloonPayloadFromState(saveBalloonState(source, [0, 0, 0, 0])));
  const destination = device();
  const base = saveBalloonState(destination, [0, 0, 0, 0]);
  loadBalloonState(destination, applyBalloonPayload(base, decodeBalloonDevicePayload(new ByteReader(bytes))));
  assert.equal(destination.hint.status, HintStatus.Done);
  assert.equal(destination.hint.cmdId, 0x80000001);
  assert.equal(new DataView(destination.readConfig().buffer).getUint32(8, true), 1);
});

test('the simplified virtio section round-trips and has QEMU\'s header order', () => {
  const source = device();
  source.balloon(RAM - 4096 * 3);
  source.readConfig();
  const state = saveBalloonState(source, [1, 2, 3, 4]);
  const transport = { status: 0x0f, isr: 0, queueSel: 2, descGpa: [0x1000, 0x2000, 0x3000, 0x4000] };
  const bytes = encodeVirtioBalloonSection(source, state, transport);
  // u8 status, u8 isr, be16 queue_sel, be32 features low (STATS_VQ|FREE_PAGE_HINT|PAGE_POISON), be32 config_len 16.
  assert.equal(hex(bytes.subarray(0, 12)), '0f000002' + '0000001a' + '00000010');
  assert.equal(hex(bytes.subarray(12, 16)), '03000000'); // config: num_pages = 3, little-endian
  const destination = device();
  destination.setNegotiatedFeatures(0n);
  const decoded = decodeVirtioBalloonSection(bytes, destination, saveBalloonState(destination, [0, 0, 0, 0]));
  assert.deepEqual(decoded.transport, transport);
  assert.equal(hex(decoded.config), hex(source.configBytesForMigration()));
  assert.deepEqual({ ...decoded.state, negotiatedFeatures: 0n }, { ...state, negotiatedFeatures: 0n });
  assert.equal(decoded.state.negotiatedFeatures, state.negotiatedFeatures);
  assert.ok(decoded.state.negotiatedFeatures & featureBit(VIRTIO_BALLOON_F_FREE_PAGE_HINT));
  assert.throws(() => decodeVirtioBalloonSection(bytes.subarray(0, bytes.length - 3), destination, state), { code: 'VIRTIO_VMSTATE_ERR_TRUNCATED' });
  const plain = new BalloonDevice({ ramSizeBytes: RAM });
  assert.throws(() => decodeVirtioBalloonSection(bytes, plain, state), { code: 'VIRTIO_VMSTATE_ERR_QUEUE_COUNT' });
});
