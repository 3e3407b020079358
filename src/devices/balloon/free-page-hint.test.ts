// The free page hint state machine against the table of QEMU 7.2 (every row), the config
// value per status, the id wrap, and the precopy-reason mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  HintStatus,
  INITIAL_HINT_STATE,
  PrecopyNotifyReason,
  configCmdIdValue,
  hintInputForReason,
  hintsAccepted,
  nextCmdId,
  stepHint,
  type HintState,
} from './free-page-hint.ts';

const ALL: HintStatus[] = [HintStatus.Stop, HintStatus.Requested, HintStatus.Start, HintStatus.Done];
const at = (status: HintStatus, cmdId = 0x80000005): HintState => ({ cmdId, status });

test('initial state is STOP with the stored id 0x80000000', () => {
  assert.deepEqual(INITIAL_HINT_STATE, { cmdId: 0x80000000, status: HintStatus.Stop });
});

test('row start: from every status, id++ and REQUESTED with a config interrupt', () => {
  for (const status of ALL) {
    const step = stepHint(at(status), { kind: 'start' });
    assert.deepEqual(step, { state: { cmdId: 0x80000006, status: HintStatus.Requested }, configChanged: true });
  }
  assert.equal(stepHint(INITIAL_HINT_STATE, { kind: 'start' }).state.cmdId, 0x80000001);
});

test('row start: the id wraps from 0xFFFFFFFF to 0x80000000', () => {
  assert.equal(nextCmdId(0xffffffff), 0x80000000);
  assert.equal(nextCmdId(0xfffffffe), 0xffffffff);
  assert.equal(stepHint(at(HintStatus.Stop, 0xffffffff), { kind: 'start' }).state.cmdId, 0x80000000);
});

test('row driver id == current while REQUESTED: START, no interrupt', () => {
  const step = stepHint(at(HintStatus.Requested), { kind: 'driver-cmd-id', cmdId: 0x80000005 });
  assert.deepEqual(step, { state: at(HintStatus.Start), configChanged: false });
});

test('row stale id while REQUESTED: ignored (including STOP = 0)', () => {
  for (const cmdId of [0, 1, 0x80000004, 0x80000006]) {
    const step = stepHint(at(HintStatus.Requested), { kind: 'driver-cmd-id', cmdId });
    assert.deepEqual(step, { state: at(HintStatus.Requested), configChanged: false });
  }
});

test('row any driver value while START: STOP, no interrupt', () => {
  for (const cmdId of [0, 1, 0x80000005, 0x12345678]) {
    const step = stepHint(at(HintStatus.Start), { kind: 'driver-cmd-id', cmdId });
    assert.deepEqual(step, { state: at(HintStatus.Stop), configChanged: false });
  }
});

test('row driver values in STOP or DONE are ignored', () => {
  for (const status of [HintStatus.Stop, HintStatus.Done]) {
    for (const cmdId of [0, 0x80000005]) {
      assert.deepEqual(stepHint(at(status), { kind: 'driver-cmd-id', cmdId }), { state: at(status), configChanged: false });
    }
  }
});

test('row stop: STOP with an interrupt unless already STOP; the id is kept', () => {
  for (const status of ALL) {
    const step = stepHint(at(status), { kind: 'stop' });
    assert.deepEqual(step.state, at(HintStatus.Stop));
    assert.equal(step.configChanged, status !== HintStatus.Stop);
  }
});

test('row done: DONE with an interrupt unless already DONE; the id is kept', () => {
  for (const status of ALL) {
    const step = stepHint(at(status), { kind: 'done' });
    assert.deepEqual(step.state, at(HintStatus.Done));
    assert.equal(step.configChanged, status !== HintStatus.Done);
  }
});

test('row hints: accepted only while START', () => {
  assert.deepEqual(ALL.map((s) => hintsAccepted(at(s))), [false, false, true, false]);
});

test('config value: REQUESTED → id, STOP → 0, DONE → 1, START → 0', () => {
  assert.equal(configCmdIdValue(at(HintStatus.Requested)), 0x80000005);
  assert.equal(configCmdIdValue(at(HintStatus.Stop)), 0);
  assert.equal(configCmdIdValue(at(HintStatus.Done)), 1);
  assert.equal(configCmdIdValue(at(HintStatus.Start)), 0);
});

test('precopy reasons map to stop / start / done / nothing / unknown', () => {
  assert.deepEqual(hintInputForReason(PrecopyNotifyReason.BeforeBitmapSync, true), { kind: 'stop' });
  assert.deepEqual(hintInputForReason(PrecopyNotifyReason.BeforeBitmapSync, false), { kind: 'stop' });
  assert.deepEqual(hintInputForReason(PrecopyNotifyReason.AfterBitmapSync, true), { kind: 'start' });
  assert.deepEqual(hintInputForReason(PrecopyNotifyReason.AfterBitmapSync, false), { kind: 'done' });
  assert.deepEqual(hintInputForReason(PrecopyNotifyReason.Cleanup, true), { kind: 'done' });
  assert.equal(hintInputForReason(PrecopyNotifyReason.Setup, true), null);
  assert.equal(hintInputForReason(PrecopyNotifyReason.Complete, false), null);
  assert.equal(hintInputForReason(5, true), 'unknown');
  assert.equal(hintInputForReason(-1, true), 'unknown');
});
