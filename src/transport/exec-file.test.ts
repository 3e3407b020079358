/**
 * exec: and file: channels, opened through their URIs: 64 MiB written with `exec:cat > FILE`
 * and read back with `exec:cat FILE`, and through `file:PATH,offset=N`, compared by sha256;
 * a command's non-zero exit and a missing file surface as typed errors carrying the reason;
 * destroy kills a command that would otherwise run on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openIncoming, openOutgoing } from './open.ts';
import { ExecChannel, spawnExecChannel } from './exec.ts';
import {
  TransportError, TRANSPORT_ERR_ABORTED, TRANSPORT_ERR_CLOSED, TRANSPORT_ERR_EXEC_STATUS, TRANSPORT_ERR_FILE,
  TRANSPORT_ERR_UNSUPPORTED,
} from './errors.ts';
import { collect, MiB, pumpBytes, randomBytes, sha256, within } from './pump.test-util.ts';

const TEST_TIMEOUT_MS = 60_000;
const DATA = randomBytes(64 * MiB);
const DATA_SHA = sha256(DATA);

/** Single-quotes a path for /bin/sh. */
function sq(path: string): string {
  return `'${path.replace(/'/g, `'\\''`)}'`;
}

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "livemig-exec-'q "));
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('exec: 64 MiB through `exec:cat > FILE`, then back through `exec:cat FILE`, sha256 equal', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'out.stream');
    const outgoing = await openOutgoing(`exec:cat > ${sq(path)}`);
    assert.ok(outgoing instanceof ExecChannel);
    assert.match(outgoing.remoteAddress, /^exec:cat > .* \(pid \d+\)$/);
    await pumpBytes(outgoing, DATA, 0xe1);
    assert.equal(await within(outgoing.whenClosed(), 30_000, 'cat > FILE'), null);
    assert.equal(statSync(path).size, DATA.length);

    const endpoint = await openIncoming(`exec:cat ${sq(path)}`);
    const incoming = await endpoint.accept();
    const got = await within(collect(incoming), 30_000, 'cat FILE');
    assert.equal(got.error, null);
    assert.equal(got.sha256, DATA_SHA);
    await assert.rejects(endpoint.accept(), (e: unknown) => e instanceof TransportError && e.code === TRANSPORT_ERR_CLOSED);
  });
});

test('exec: a non-zero exit is TRANSPORT_ERR_EXEC_STATUS with stderr, and wins over EPIPE', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withDir(async (dir) => {
    // The command cannot open its output, so it exits 1 while we are still writing.
    const outgoing = spawnExecChannel(`cat > ${sq(join(dir, 'missing', 'x'))}`, 'outgoing');
    void pumpBytes(outgoing, DATA.subarray(0, 16 * MiB), 2);
    const error = await within(outgoing.whenClosed(), 20_000, 'failing command');
    assert.ok(error instanceof TransportError && error.code === TRANSPORT_ERR_EXEC_STATUS, String(error));
    assert.match(error.message, /exited with status [12]/);
    assert.match(error.detail ?? '', /nonexistent|No such file or directory/);

    // Incoming: the bytes the command printed arrive, then its status is the verdict.
    const incoming = spawnExecChannel('printf hello; echo oops >&2; exit 3', 'incoming');
    const got = await within(collect(incoming), 10_000, 'exit 3');
    assert.equal(got.bytes, 5);
    assert.ok(got.error instanceof TransportError && got.error.code === TRANSPORT_ERR_EXEC_STATUS);
    assert.match(got.error.message, /exited with status 3: oops/);
  });
});

test('exec: destroy kills a command that would run for a minute', { timeout: TEST_TIMEOUT_MS }, async () => {
  const channel = spawnExecChannel('sleep 60', 'incoming');
  channel.onData(() => undefined);
  setTimeout(() => channel.destroy(new Error('cancelled')), 50);
  const error = await within(channel.whenClosed(), 10_000, 'killed command');
  assert.ok(error instanceof TransportError && error.code === TRANSPORT_ERR_ABORTED);
  assert.notEqual(channel.child.signalCode ?? channel.child.exitCode, null, 'the child is gone');
});

test('file: 64 MiB written at offset=4096 and read back from there, sha256 equal, head left zero', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'image.bin');
    writeFileSync(path, Buffer.alloc(10_000, 0xee));
    const outgoing = await openOutgoing(`file:${path},offset=4K`);
    assert.equal(outgoing.remoteAddress, `file:${path},offset=4096`);
    await pumpBytes(outgoing, DATA, 0xf11e);
    assert.equal(await within(outgoing.whenClosed(), 30_000, 'file write'), null);
    const bytes = readFileSync(path);
    assert.equal(bytes.length, 4096 + DATA.length, 'the old content was truncated away');
    assert.ok(bytes.subarray(0, 4096).every((b) => b === 0));
    // A file the channel creates is private (0600), as QEMU's file: migration makes it.
    const fresh = await openOutgoing(`file:${join(dir, 'fresh.bin')}`);
    fresh.write(DATA.subarray(0, 10));
    fresh.end();
    assert.equal(await within(fresh.whenClosed(), 5_000, 'fresh file'), null);
    assert.equal(statSync(join(dir, 'fresh.bin')).mode & 0o777, 0o600);

    const endpoint = await openIncoming(`file:${path},offset=4096`);
    const got = await within(collect(await endpoint.accept()), 30_000, 'file read');
    assert.equal(got.error, null);
    assert.equal(got.sha256, DATA_SHA);
    assert.ok(got.chunks <= 64 + 1, `1 MiB reads expected, got ${got.chunks} chunks of ${got.bytes} bytes`);
  });
});

test('file: a missing file is TRANSPORT_ERR_FILE; TLS over exec: or file: is refused', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withDir(async (dir) => {
    const endpoint = await openIncoming(`file:${join(dir, 'absent')}`);
    const got = await within(collect(await endpoint.accept()), 5_000, 'missing file');
    assert.ok(got.error instanceof TransportError && got.error.code === TRANSPORT_ERR_FILE && got.error.sysCode === 'ENOENT');
    const writeInto = await openOutgoing(`file:${join(dir, 'no', 'such', 'dir')}`);
    writeInto.write(new Uint8Array(10));
    writeInto.end();
    const error = await within(writeInto.whenClosed(), 5_000, 'bad dir');
    assert.ok(error instanceof TransportError && error.code === TRANSPORT_ERR_FILE);
    const creds = { endpoint: 'client' as const, ca: Buffer.alloc(0), cert: null, key: null, verifyPeer: true };
    await assert.rejects(openOutgoing('exec:cat', { tls: creds }), (e: unknown) => e instanceof TransportError && e.code === TRANSPORT_ERR_UNSUPPORTED);
  });
});
