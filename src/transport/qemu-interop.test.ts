/**
 * Our tcp channels against a real qemu-system-x86_64 7.2, both ways:
 *   a. QEMU (`-M none -m 32M`) runs `migrate tcp:127.0.0.1:PORT` into our listener; we receive
 *      a stream that starts with "QEVM" and closes cleanly once QEMU says `completed`, at
 *      least as long as QEMU's ram.transferred;
 *   b. our tcp connect feeds a recorded 7.2 stream (testdata none-16M.stream) to a QEMU waiting
 *      on `migrate-incoming tcp:127.0.0.1:0`, whose bound port comes from query-migrate's
 *      socket-address; QEMU reaches `completed`;
 *   c. QEMU with multifd (2 channels) migrates into our listener, and acceptMigrationChannels
 *      files its three connections as main, multifd 0 and multifd 1 by their first bytes.
 * Skipped with a printed reason without QEMU, failing in CI (harness/skip.ts). Every QEMU runs
 * under the harness watchdog and is stopped in a finally block.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startQemu, type QemuProcess } from '../harness/qemu.ts';
import type { MigrationInfo } from '../harness/qmp-client.ts';
import { requireQemu } from '../harness/skip.ts';
import { readVector } from '../testing/testdata.ts';
import { connectSocket, listenSocket } from './socket.ts';
import { ChannelWriter } from './channel.ts';
import { acceptMigrationChannels, MULTIFD_MAGIC, QEVM_MAGIC } from './multi-channel.ts';
import { collect, within } from './pump.test-util.ts';

const TEST_TIMEOUT_MS = 90_000;
const QEMU_WATCHDOG_MS = 80_000;
const BASE_ARGS = ['-nodefaults', '-display', 'none'];

async function withQemu(args: readonly string[], name: string, body: (qemu: QemuProcess) => Promise<void>): Promise<void> {
  const qemu = await startQemu({ name, args, watchdogMs: QEMU_WATCHDOG_MS });
  try {
    await body(qemu);
  } finally {
    await qemu.stop();
  }
}

test('a: QEMU 7.2 migrates into our tcp listener; the stream starts with QEVM and ends at completed', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (requireQemu(t) === null) return;
  const listener = await listenSocket({ kind: 'tcp', host: '127.0.0.1', port: 0 }, { expectedConnections: 1 });
  try {
    await withQemu(['-M', 'none', '-m', '32M', ...BASE_ARGS], 'source', async (qemu) => {
      await qemu.qmp.execute('migrate', { uri: listener.uri });
      const channel = await listener.accept(20_000);
      const received = collect(channel);
      const info = await qemu.qmp.waitMigration(['completed', 'failed', 'cancelled'], 60_000);
      assert.equal(info.status, 'completed', JSON.stringify(info));
      const got = await within(received, 20_000, 'stream end');
      assert.equal(got.error, null, 'QEMU closes the connection cleanly');
      const magic = new DataView(got.head.buffer, got.head.byteOffset).getUint32(0);
      assert.equal(magic, QEVM_MAGIC);
      const transferred = info.ram?.transferred ?? 0;
      assert.ok(transferred > 0 && got.bytes >= transferred, `received ${got.bytes}, QEMU transferred ${transferred}`);
      // The rest is the header, device sections and the VMDESCRIPTION JSON: small.
      assert.ok(got.bytes - transferred < 64 * 1024, `overhead ${got.bytes - transferred} bytes`);
      t.diagnostic(`received ${got.bytes} bytes; QEMU ram.transferred ${transferred}`);
    });
  } finally {
    await listener.close();
  }
});

test('b: our tcp connect feeds a recorded 7.2 stream to QEMU -incoming, which completes', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (requireQemu(t) === null) return;
  const stream = readVector('qemu-7.2/none-16M.stream');
  await withQemu(['-M', 'none', '-m', '16M', ...BASE_ARGS, '-incoming', 'defer'], 'destination', async (qemu) => {
    await qemu.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    const listening = await qemu.qmp.execute<MigrationInfo>('query-migrate');
    const addresses = listening['socket-address'] as Array<{ type: string; host: string; port: string }> | undefined;
    const port = Number(addresses?.[0]?.port);
    assert.ok(Number.isInteger(port) && port > 0, `socket-address: ${JSON.stringify(listening)}`);

    const channel = await connectSocket({ kind: 'tcp', host: '127.0.0.1', port });
    const writer = new ChannelWriter(channel);
    writer.write(stream);
    writer.end();
    const closed = channel.whenClosed();

    let info: MigrationInfo = {};
    const deadline = Date.now() + 60_000;
    while (info.status !== 'completed' && info.status !== 'failed' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      info = await qemu.qmp.execute<MigrationInfo>('query-migrate');
    }
    assert.equal(info.status, 'completed', `${JSON.stringify(info)}; stderr: ${qemu.stderr}`);
    assert.equal(channel.bytesWritten, stream.length);
    assert.equal(await within(closed, 20_000, 'channel close'), null);
    const runstate = await qemu.qmp.execute<{ status: string }>('query-status');
    assert.notEqual(runstate.status, 'inmigrate');
  });
});

test('c: a QEMU 7.2 multifd migration (2 channels) is classified into main and multifd 0/1', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (requireQemu(t) === null) return;
  const listener = await listenSocket({ kind: 'tcp', host: '127.0.0.1', port: 0 }, { expectedConnections: 3 });
  try {
    await withQemu(['-M', 'none', '-m', '32M', ...BASE_ARGS], 'multifd-source', async (qemu) => {
      await qemu.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'multifd', state: true }] });
      await qemu.qmp.execute('migrate-set-parameters', { 'multifd-channels': 2 });
      await qemu.qmp.execute('migrate', { uri: listener.uri });
      const set = await acceptMigrationChannels(listener, { multifdChannels: 2, postcopyPreempt: false, timeoutMs: 20_000 });
      const received = [set.main, ...set.multifd].map((channel) => collect(channel));
      const info = await qemu.qmp.waitMigration(['completed', 'failed', 'cancelled'], 60_000);
      assert.equal(info.status, 'completed', JSON.stringify(info));
      const [main, ...channels] = await within(Promise.all(received), 20_000, 'streams end');
      assert.equal(new DataView(main.head.buffer, main.head.byteOffset).getUint32(0), QEVM_MAGIC);
      channels.forEach((got, id) => {
        assert.equal(got.error, null);
        assert.equal(new DataView(got.head.buffer, got.head.byteOffset).getUint32(0), MULTIFD_MAGIC);
        assert.equal(got.head[24], id, 'the init packet names the channel it was filed under');
      });
    });
  } finally {
    await listener.close();
  }
});
