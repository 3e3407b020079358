/**
 * The server end to end over real sockets with the harness's QmpClient: a unix socket created
 * 0600, negotiation, query-status, a typed error, events delivered to negotiated clients only,
 * several clients with their own negotiation, bad input answered without dropping the client,
 * BALLOON_CHANGE rate limiting, refusal of unsafe paths and hosts, TCP, clean close.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient, QmpError } from '../harness/qmp-client.ts';
import { FakeVmController } from './fake-vm-controller.ts';
import { QmpServer, QmpServerError } from './server.ts';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'livemig-qmp-'));
}

/** A raw line-oriented connection (no automatic negotiation). */
class RawClient {
  readonly lines: string[] = [];
  private buffer = '';
  private waiters: Array<() => void> = [];
  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      let at = this.buffer.indexOf('\n');
      while (at >= 0) {
        this.lines.push(this.buffer.slice(0, at));
        this.buffer = this.buffer.slice(at + 1);
        at = this.buffer.indexOf('\n');
      }
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static open(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Waits until `count` lines have arrived in total. */
  async waitLines(count: number, timeoutMs = 5000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length < count) {
      if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(this.lines)}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    return this.lines;
  }

  send(text: string): void {
    this.socket.write(text);
  }
}

test('unix socket end to end with the harness client', async () => {
  const dir = tempDir();
  const path = join(dir, 'qmp.sock');
  const vm = new FakeVmController();
  const server = await QmpServer.listen({ controller: vm, listen: { unix: path } });
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.ok(statSync(path).isSocket());
    assert.deepEqual(server.address, { unix: path });
    const client = await QmpClient.connectUnix(path, { timeoutMs: 5000 });
    assert.equal(client.greeting.QMP.version.qemu.major, 7);
    assert.deepEqual(await client.execute('query-status'), { status: 'running', singlestep: false, running: true });
    await assert.rejects(client.execute('migrate-incoming', { uri: 'tcp:0:1' }), (error: unknown) => {
      assert.ok(error instanceof QmpError);
      assert.equal(error.class, 'GenericError');
      assert.equal(error.desc, "'-incoming' was not specified on the command line");
      return true;
    });
    await assert.rejects(client.execute('balloon', { value: 1 }), (error: unknown) => error instanceof QmpError && error.class === 'DeviceNotActive');
    await client.execute('stop');
    const stop = await client.waitEvent('STOP', () => true, 5000);
    assert.equal(stop.data, undefined);
    assert.ok(stop.timestamp.seconds > 1_600_000_000);
    assert.equal(await client.hmp('info status'), 'VM status: paused\r\n');
    client.close();
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(existsSync(path), false, 'socket file removed on close');
});

test('several clients: each negotiates alone; events go to negotiated clients only', async () => {
  const dir = tempDir();
  const path = join(dir, 'qmp.sock');
  const vm = new FakeVmController();
  const server = await QmpServer.listen({ controller: vm, listen: { unix: path } });
  try {
    const a = await QmpClient.connectUnix(path, { timeoutMs: 5000 });
    const b = await RawClient.open(path);
    await b.waitLines(1);
    b.send('{"execute":"query-status","id":1}\n');
    await b.waitLines(2);
    assert.match(b.lines[1], /Expecting capabilities negotiation/);
    vm.emit({ event: 'RESUME' });
    await a.waitEvent('RESUME', () => true, 5000);
    b.send('{"execute":"qmp_capabilities"}\n');
    await b.waitLines(3);
    assert.equal(b.lines[2], '{"return": {}}');
    vm.emit({ event: 'MIGRATION', data: { status: 'setup' } });
    await b.waitLines(4);
    assert.match(b.lines[3], /"event": "MIGRATION", "data": \{"status": "setup"\}/);
    assert.equal(b.lines.filter((l) => l.includes('RESUME')).length, 0, 'no event before negotiation');
    assert.equal(server.clientCount, 2);
    a.close();
    b.socket.destroy();
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input over a socket is answered and the client stays connected', async () => {
  const dir = tempDir();
  const path = join(dir, 'qmp.sock');
  const server = await QmpServer.listen({ controller: new FakeVmController(), listen: { unix: path }, maxLineBytes: 1024 });
  try {
    const raw = await RawClient.open(path);
    await raw.waitLines(1);
    raw.send('{"execute":"qmp_capabilities"}\n');
    const inputs = ['{garbage', '[]', `{"execute":"query-status","id":"${'x'.repeat(5000)}"}`, '{"execute":"nope"}', '\u0000\u0001'];
    let expected = 2;
    for (const input of inputs) {
      raw.send(`${input}\n`);
      expected++;
      await raw.waitLines(expected);
      assert.match(raw.lines[expected - 1], /"error"/, input.slice(0, 40));
      raw.send('{"execute":"query-status","id":"ok"}\n');
      expected++;
      await raw.waitLines(expected);
      assert.equal(raw.lines[expected - 1], '{"return": {"status": "running", "singlestep": false, "running": true}, "id": "ok"}');
    }
    // A request split into many small writes.
    for (const ch of '{"execute":"query-status","id":"split"}\n') raw.send(ch);
    await raw.waitLines(expected + 1);
    assert.match(raw.lines[expected], /"id": "split"/);
    raw.socket.destroy();
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('BALLOON_CHANGE is limited to one per second, the last one held', async () => {
  const dir = tempDir();
  const path = join(dir, 'qmp.sock');
  const vm = new FakeVmController({ balloon: true });
  const server = await QmpServer.listen({ controller: vm, listen: { unix: path } });
  try {
    const client = await QmpClient.connectUnix(path, { timeoutMs: 5000 });
    vm.setBalloonActual(1 * 1048576);
    vm.setBalloonActual(2 * 1048576);
    vm.setBalloonActual(3 * 1048576);
    const first = await client.waitEvent('BALLOON_CHANGE', () => true, 5000);
    assert.deepEqual(first.data, { actual: 1048576 });
    const started = Date.now();
    const held = await client.waitEvent('BALLOON_CHANGE', () => true, 5000);
    assert.deepEqual(held.data, { actual: 3 * 1048576 });
    assert.ok(Date.now() - started > 700, 'held until the period ends');
    assert.equal(client.events.filter((e) => e.event === 'BALLOON_CHANGE').length, 0);
    client.close();
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('unsafe unix paths are refused; a stale socket is replaced', async () => {
  const dir = tempDir();
  try {
    const file = join(dir, 'file');
    writeFileSync(file, 'keep me');
    await assert.rejects(QmpServer.listen({ controller: new FakeVmController(), listen: { unix: file } }), (e: unknown) => e instanceof QmpServerError && e.code === 'QMP_ERR_PATH_NOT_SOCKET');
    assert.equal(readFileSync(file, 'utf8'), 'keep me');
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    await assert.rejects(QmpServer.listen({ controller: new FakeVmController(), listen: { unix: sub } }), (e: unknown) => e instanceof QmpServerError && e.code === 'QMP_ERR_PATH_NOT_SOCKET');

    const live = join(dir, 'live.sock');
    const first = await QmpServer.listen({ controller: new FakeVmController(), listen: { unix: live } });
    await assert.rejects(QmpServer.listen({ controller: new FakeVmController(), listen: { unix: live } }), (e: unknown) => e instanceof QmpServerError && e.code === 'QMP_ERR_ADDRESS_IN_USE');
    await first.close();

    // A stale socket file: bound, moved away from libuv's unlink, server gone.
    const stale = join(dir, 'stale.sock');
    const old = createServer();
    await new Promise<void>((resolve) => old.listen(join(dir, 'tmp.sock'), resolve));
    renameSync(join(dir, 'tmp.sock'), stale);
    await new Promise<void>((resolve) => old.close(() => resolve()));
    assert.ok(statSync(stale).isSocket());
    const replaced = await QmpServer.listen({ controller: new FakeVmController(), listen: { unix: stale } });
    const client = await QmpClient.connectUnix(stale, { timeoutMs: 5000 });
    assert.equal((await client.execute<{ status: string }>('query-status')).status, 'running');
    client.close();
    await replaced.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('TCP: loopback by default, other hosts only when asked', async () => {
  await assert.rejects(
    QmpServer.listen({ controller: new FakeVmController(), listen: { tcp: { host: '0.0.0.0', port: 0 } } }),
    (e: unknown) => e instanceof QmpServerError && e.code === 'QMP_ERR_NON_LOCAL_HOST',
  );
  const server = await QmpServer.listen({ controller: new FakeVmController(), listen: { tcp: { port: 0 } } });
  try {
    const address = server.address;
    assert.ok('port' in address);
    assert.equal(address.host, '127.0.0.1');
    const client = await QmpClient.connectTcp('127.0.0.1', address.port, { timeoutMs: 5000 });
    assert.equal((await client.execute<{ status: string }>('query-status')).status, 'running');
    await client.execute('quit');
    const shutdown = await client.waitEvent('SHUTDOWN', () => true, 5000);
    assert.deepEqual(shutdown.data, { guest: false, reason: 'host-qmp-quit' });
    client.close();
  } finally {
    await server.close();
  }
});

test('close disconnects clients and is idempotent', async () => {
  const dir = tempDir();
  const path = join(dir, 'qmp.sock');
  const server = await QmpServer.listen({ controller: new FakeVmController(), listen: { unix: path } });
  const client = await QmpClient.connectUnix(path, { timeoutMs: 5000 });
  await Promise.all([server.close(), server.close()]);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(client.closed, true);
  assert.equal(existsSync(path), false);
  rmSync(dir, { recursive: true, force: true });
});
