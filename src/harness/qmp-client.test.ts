/**
 * QmpClient against a scripted fake QMP server on a unix socket: greeting and negotiation,
 * framing across byte-sized writes and split UTF-8, events interleaved with replies, typed
 * errors, timeouts and the closed-connection path. No QEMU needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { makeTempDir, removeTempDir } from './ram-image.ts';
import { QmpClient, QmpClosedError, QmpError, QmpTimeoutError } from './qmp-client.ts';

const GREETING = { QMP: { version: { qemu: { micro: 22, minor: 2, major: 7 }, package: 'fake' }, capabilities: ['oob'] } };

type Handler = (command: { execute: string; arguments?: Record<string, unknown>; id?: unknown }, socket: Socket) => void;

/** Writes `text` one byte at a time (worst-case partial reads). */
async function trickle(socket: Socket, text: string): Promise<void> {
  for (const byte of Buffer.from(text, 'utf8')) {
    socket.write(Buffer.of(byte));
    await new Promise((r) => setImmediate(r));
  }
}

async function withServer(handler: Handler, body: (path: string) => Promise<void>, greetingSlowly = false): Promise<void> {
  const dir = makeTempDir('livemig-qmp-test-');
  const path = join(dir, 'qmp.sock');
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    const greeting = `${JSON.stringify(GREETING)}\r\n`;
    void (greetingSlowly ? trickle(socket, greeting) : Promise.resolve(socket.write(greeting)));
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        const command = JSON.parse(line) as { execute: string; id?: unknown };
        if (command.execute === 'qmp_capabilities') socket.write(`${JSON.stringify({ return: {}, id: command.id })}\r\n`);
        else handler(command, socket);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  try {
    await body(path);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    removeTempDir(dir);
  }
}

test('greeting read byte by byte, capabilities negotiated, reply matched by id', async () => {
  await withServer(
    (command, socket) => socket.write(`${JSON.stringify({ return: { status: 'prelaunch', running: false }, id: command.id })}\r\n`),
    async (path) => {
      const qmp = await QmpClient.connectUnix(path, { timeoutMs: 5_000 });
      try {
        assert.equal(qmp.greeting.QMP.version.qemu.major, 7);
        assert.deepEqual(qmp.greeting.QMP.capabilities, ['oob']);
        assert.deepEqual(await qmp.execute('query-status'), { status: 'prelaunch', running: false });
      } finally {
        qmp.close();
      }
    },
    true,
  );
});

test('events and replies in one chunk and split UTF-8 are framed correctly', async () => {
  await withServer(
    (command, socket) => {
      const event = { event: 'MIGRATION', data: { status: 'setup' }, timestamp: { seconds: 1, microseconds: 2 } };
      const reply = { return: 'héllo ✓ 世界', id: command.id };
      const bytes = Buffer.from(`${JSON.stringify(event)}\r\n${JSON.stringify(reply)}\r\n`, 'utf8');
      // Split inside the multi-byte '✓' so the decoder sees half a character at a chunk end.
      const cut = bytes.indexOf(Buffer.from('✓', 'utf8')) + 1;
      socket.write(bytes.subarray(0, cut));
      setTimeout(() => socket.write(bytes.subarray(cut)), 20);
    },
    async (path) => {
      const qmp = await QmpClient.connectUnix(path, { timeoutMs: 5_000 });
      try {
        assert.equal(await qmp.hmp('info status'), 'héllo ✓ 世界');
        const event = await qmp.waitEvent('MIGRATION', (e) => e.data?.status === 'setup', 1_000);
        assert.equal(event.timestamp.microseconds, 2);
        assert.equal(qmp.events.length, 0);
      } finally {
        qmp.close();
      }
    },
  );
});

test('an error reply becomes a QmpError with class and desc', async () => {
  await withServer(
    (command, socket) => socket.write(`${JSON.stringify({ error: { class: 'CommandNotFound', desc: `The command ${command.execute} has not been found` }, id: command.id })}\n`),
    async (path) => {
      const qmp = await QmpClient.connectUnix(path, { timeoutMs: 5_000 });
      try {
        await assert.rejects(qmp.execute('nope'), (error: unknown) => {
          assert.ok(error instanceof QmpError);
          assert.equal(error.class, 'CommandNotFound');
          assert.equal(error.desc, 'The command nope has not been found');
          return true;
        });
      } finally {
        qmp.close();
      }
    },
  );
});

test('timeouts and a closed connection reject with typed errors', async () => {
  await withServer(
    (command, socket) => {
      if (command.execute === 'hang') return;
      socket.destroy();
    },
    async (path) => {
      const qmp = await QmpClient.connectUnix(path, { timeoutMs: 5_000 });
      try {
        await assert.rejects(qmp.execute('hang', undefined, 50), QmpTimeoutError);
        await assert.rejects(qmp.waitEvent('RESUME', undefined, 50), QmpTimeoutError);
        const waiting = qmp.waitEvent('RESUME', undefined, 5_000);
        await assert.rejects(qmp.execute('quit'), QmpClosedError);
        await assert.rejects(waiting, QmpClosedError);
        await assert.rejects(qmp.execute('query-status'), QmpClosedError);
      } finally {
        qmp.close();
      }
    },
  );
});

test('connecting to a socket that never appears times out', async () => {
  const dir = makeTempDir('livemig-qmp-test-');
  try {
    await assert.rejects(QmpClient.connectUnix(join(dir, 'absent.sock'), { timeoutMs: 100 }), QmpTimeoutError);
    await assert.rejects(QmpClient.connectUnix(join(dir, 'absent.sock'), { timeoutMs: 5_000, isAlive: () => false }), QmpClosedError);
  } finally {
    removeTempDir(dir);
  }
});
