/**
 * Migration URI parsing, as a table: every accepted shape with its parsed value and its
 * canonical text, then every refused one with its error code and, for an unknown scheme,
 * QEMU 7.2's exact message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BAD_PROTOCOL_TEXT, formatMigrationUri, parseMigrationUri, supportsMultipleChannels, type MigrationUri } from './uri.ts';
import { TransportError, TRANSPORT_ERR_BAD_ADDRESS, TRANSPORT_ERR_BAD_URI, TRANSPORT_ERR_UNSUPPORTED } from './errors.ts';

const GOOD: ReadonlyArray<readonly [string, MigrationUri, string]> = [
  ['tcp:127.0.0.1:4444', { kind: 'tcp', host: '127.0.0.1', port: 4444 }, 'tcp:127.0.0.1:4444'],
  ['tcp:[::1]:0', { kind: 'tcp', host: '::1', port: 0 }, 'tcp:[::1]:0'],
  ['tcp:[fe80::1%eth0]:65535', { kind: 'tcp', host: 'fe80::1%eth0', port: 65535 }, 'tcp:[fe80::1%eth0]:65535'],
  ['tcp::4444', { kind: 'tcp', host: '', port: 4444 }, 'tcp::4444'],
  ['tcp:localhost:1', { kind: 'tcp', host: 'localhost', port: 1 }, 'tcp:localhost:1'],
  ['unix:/run/livemig/mig.sock', { kind: 'unix', path: '/run/livemig/mig.sock' }, 'unix:/run/livemig/mig.sock'],
  ['unix:relative.sock', { kind: 'unix', path: 'relative.sock' }, 'unix:relative.sock'],
  ['exec:cat > /tmp/out', { kind: 'exec', command: 'cat > /tmp/out' }, 'exec:cat > /tmp/out'],
  ['exec:gzip -c | ssh host "cat > x"', { kind: 'exec', command: 'gzip -c | ssh host "cat > x"' }, 'exec:gzip -c | ssh host "cat > x"'],
  ['file:/var/tmp/vm.img', { kind: 'file', path: '/var/tmp/vm.img', offsetBytes: 0 }, 'file:/var/tmp/vm.img'],
  ['file:/var/tmp/vm.img,offset=4096', { kind: 'file', path: '/var/tmp/vm.img', offsetBytes: 4096 }, 'file:/var/tmp/vm.img,offset=4096'],
  ['file:/var/tmp/vm.img,offset=1M', { kind: 'file', path: '/var/tmp/vm.img', offsetBytes: 1048576 }, 'file:/var/tmp/vm.img,offset=1048576'],
  ['file:/a,b/c', { kind: 'file', path: '/a,b/c', offsetBytes: 0 }, 'file:/a,b/c'],
  ['file:/a,offset=x/b,offset=0', { kind: 'file', path: '/a,offset=x/b', offsetBytes: 0 }, 'file:/a,offset=x/b,offset=0'],
];

const BAD: ReadonlyArray<readonly [string, string]> = [
  ['', TRANSPORT_ERR_BAD_URI],
  ['tcp', TRANSPORT_ERR_BAD_URI],
  ['foo:bar', TRANSPORT_ERR_BAD_URI],
  ['TCP:127.0.0.1:4444', TRANSPORT_ERR_BAD_URI],
  ['http://127.0.0.1:4444', TRANSPORT_ERR_BAD_URI],
  ['/tmp/file', TRANSPORT_ERR_BAD_URI],
  ['fd:migfd', TRANSPORT_ERR_UNSUPPORTED],
  ['vsock:3:4444', TRANSPORT_ERR_UNSUPPORTED],
  ['rdma:127.0.0.1:4444', TRANSPORT_ERR_UNSUPPORTED],
  ['tcp:127.0.0.1', TRANSPORT_ERR_BAD_ADDRESS],
  ['tcp:127.0.0.1:', TRANSPORT_ERR_BAD_ADDRESS],
  ['tcp:127.0.0.1:65536', TRANSPORT_ERR_BAD_ADDRESS],
  ['tcp:127.0.0.1:http', TRANSPORT_ERR_BAD_ADDRESS],
  ['tcp:127.0.0.1:-1', TRANSPORT_ERR_BAD_ADDRESS],
  ['tcp:::1:4444', TRANSPORT_ERR_BAD_ADDRESS],
  ['tcp:[::1:4444', TRANSPORT_ERR_BAD_ADDRESS],
  ['tcp:[127.0.0.1]:4444', TRANSPORT_ERR_BAD_ADDRESS],
  ['tcp:a b:1', TRANSPORT_ERR_BAD_ADDRESS],
  ['unix:', TRANSPORT_ERR_BAD_ADDRESS],
  ['exec:', TRANSPORT_ERR_BAD_ADDRESS],
  ['exec:   ', TRANSPORT_ERR_BAD_ADDRESS],
  ['file:', TRANSPORT_ERR_BAD_ADDRESS],
  ['file:,offset=4096', TRANSPORT_ERR_BAD_ADDRESS],
  ['file:/x,offset=', TRANSPORT_ERR_BAD_ADDRESS],
  ['file:/x,offset=abc', TRANSPORT_ERR_BAD_ADDRESS],
  ['file:/x,offset=-5', TRANSPORT_ERR_BAD_ADDRESS],
];

test('uri: every accepted shape parses to its value and formats back canonically', () => {
  for (const [text, parsed, canonical] of GOOD) {
    assert.deepEqual(parseMigrationUri(text), parsed, text);
    assert.equal(formatMigrationUri(parsed), canonical, text);
    assert.deepEqual(parseMigrationUri(canonical), parsed, `${text} round trip`);
  }
});

test('uri: refused shapes give typed errors; an unknown scheme gives QEMU 7.2\'s exact text', () => {
  for (const [text, code] of BAD) {
    assert.throws(() => parseMigrationUri(text), (e: unknown) => e instanceof TransportError && e.code === code, `${JSON.stringify(text)} → ${code}`);
  }
  assert.throws(() => parseMigrationUri('bogus:1'), { message: "Parameter 'uri' expects a valid migration protocol" });
  assert.equal(BAD_PROTOCOL_TEXT, "Parameter 'uri' expects a valid migration protocol");
  assert.throws(() => parseMigrationUri('tcp:[::1:4444'), { message: "error parsing IPv6 address '[::1:4444'" });
  assert.throws(() => parseMigrationUri('tcp:127.0.0.1'), { message: "error parsing address '127.0.0.1'" });
  assert.throws(() => parseMigrationUri('fd:3'), { message: "Migration URI scheme 'fd:' is not supported by livemig" });
});

test('uri: only tcp: and unix: can carry extra channels (multifd, postcopy-preempt)', () => {
  const kinds = ['tcp:127.0.0.1:1', 'unix:/x', 'exec:cat', 'file:/x'].map((u) => supportsMultipleChannels(parseMigrationUri(u)));
  assert.deepEqual(kinds, [true, true, false, false]);
});
