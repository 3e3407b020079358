/**
 * TLS channels with certificates generated at test time by openssl (skipped, with the reason
 * printed, only when openssl is missing and CI is not set). Checks: a 16 MiB round trip with
 * mutual x509 verification, by IP and by name; a server signed by another CA is refused by
 * the client (TLS_VERIFY) and the server reports a handshake failure; a wrong tls-hostname is
 * refused (TLS_HOSTNAME); a client without a certificate, or with one from another CA, is
 * refused by a verifying server; missing credential files are a typed error; a cut TLS
 * connection is typed on both ends.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inCi } from '../harness/skip.ts';
import { connectTls, listenTls, loadTlsCreds, type TlsCreds } from './tls.ts';
import { openIncoming, openOutgoing } from './open.ts';
import type { SocketAddress } from './uri.ts';
import {
  TransportError, TRANSPORT_ERR_ABORTED, TRANSPORT_ERR_RESET, TRANSPORT_ERR_TLS_CREDS, TRANSPORT_ERR_TLS_HANDSHAKE,
  TRANSPORT_ERR_TLS_HOSTNAME, TRANSPORT_ERR_TLS_VERIFY,
} from './errors.ts';
import { makeTestPki, opensslUnavailableReason, type TestPki } from './test-certs.test-util.ts';
import { collect, MiB, pumpBytes, randomBytes, sha256, within } from './pump.test-util.ts';

const TEST_TIMEOUT_MS = 60_000;
const LOOPBACK: SocketAddress = { kind: 'tcp', host: '127.0.0.1', port: 0 };
const missing = opensslUnavailableReason();
if (missing !== null && inCi()) throw new Error(`CI=true and openssl is unavailable, TLS tests must not be skipped: ${missing}`);
const pki: TestPki | null = missing === null ? makeTestPki('good') : null;
const rogue: TestPki | null = missing === null ? makeTestPki('rogue') : null;
after(() => {
  pki?.dispose();
  rogue?.dispose();
});

/** Both PKIs, or null after marking the test skipped with a printed reason. */
function needPki(t: { skip(message: string): void; name: string }): { good: string; other: string } | null {
  if (pki === null || rogue === null) {
    process.stderr.write(`skipping '${t.name}': ${missing}\n`);
    t.skip(String(missing));
    return null;
  }
  return { good: pki.credsDir, other: rogue.credsDir };
}

function isCode(code: string): (e: unknown) => boolean {
  return (e: unknown) => e instanceof TransportError && e.code === code;
}

test('tls: 16 MiB with mutual verification, by IP (URI host) and by name (tls-hostname), sha256 equal', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const dirs = needPki(t);
  if (dirs === null) return;
  const data = randomBytes(16 * MiB);
  const endpoint = await openIncoming('tcp:127.0.0.1:0', { tls: loadTlsCreds(dirs.good, 'server'), expectedConnections: 2 });
  try {
    for (const hostname of [undefined, 'localhost']) {
      const client = await openOutgoing(endpoint.uri, { tls: loadTlsCreds(dirs.good, 'client'), tlsHostname: hostname });
      const server = await endpoint.accept(5_000);
      assert.match(server.remoteAddress, /\(tls\)$/);
      // A TLS channel ignores a reused read buffer (decrypted bytes come as owned chunks).
      const received = collect(server, undefined, { reuseBufferBytes: MiB });
      await pumpBytes(client, data, 0x715);
      const got = await within(received, 20_000, 'tls receive');
      assert.equal(got.error, null);
      assert.equal(got.sha256, sha256(data));
      assert.equal(server.readsIntoReusedBuffer, false);
      assert.equal(await within(client.whenClosed(), 5_000, 'client close'), null);
    }
  } finally {
    await endpoint.close();
  }
});

/** Starts a verifying TLS listener with `serverDir` creds and connects a client with `clientCreds`. */
async function attempt(serverDir: string, clientCreds: TlsCreds, hostname?: string): Promise<{ client: unknown; server: unknown }> {
  const listener = await listenTls(LOOPBACK, { creds: loadTlsCreds(serverDir, 'server'), expectedConnections: 1 });
  try {
    const accepted = listener.accept(10_000).then((c) => c, (e: unknown) => e);
    const client = await connectTls(listener.address, { creds: clientCreds, hostname, timeoutMs: 10_000 }).then((c) => c, (e: unknown) => e);
    const server = await accepted;
    // In TLS 1.3 a client finishes its handshake before the server judges its certificate.
    for (const side of [client, server]) if (!(side instanceof Error)) (side as { destroy(): void }).destroy();
    return { client, server };
  } finally {
    await listener.close();
  }
}

test('tls: a server certificate from another CA is refused (TLS_VERIFY); the server sees a failed handshake', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const dirs = needPki(t);
  if (dirs === null) return;
  // The client trusts the rogue CA only; the server presents the good CA's certificate.
  const { client, server } = await attempt(dirs.good, loadTlsCreds(dirs.other, 'client'));
  assert.ok(isCode(TRANSPORT_ERR_TLS_VERIFY)(client), String(client));
  assert.ok(isCode(TRANSPORT_ERR_TLS_HANDSHAKE)(server), String(server));
});

test('tls: a wrong tls-hostname is refused (TLS_HOSTNAME), and so is a URI host the certificate lacks', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const dirs = needPki(t);
  if (dirs === null) return;
  const { client, server } = await attempt(dirs.good, loadTlsCreds(dirs.good, 'client'), 'migration.example.com');
  assert.ok(isCode(TRANSPORT_ERR_TLS_HOSTNAME)(client), String(client));
  assert.match((client as Error).message, /migration\.example\.com/);
  assert.ok(isCode(TRANSPORT_ERR_TLS_HANDSHAKE)(server), String(server));
  // 127.0.0.2 reaches the same loopback listener, but the certificate names 127.0.0.1 only.
  const listener = await listenTls({ kind: 'tcp', host: '', port: 0 }, { creds: loadTlsCreds(dirs.good, 'server'), expectedConnections: 1 });
  const port = (listener.address as { port: number }).port;
  const accepted = listener.accept(10_000).catch((e: unknown) => e);
  await assert.rejects(connectTls({ kind: 'tcp', host: '127.0.0.2', port }, { creds: loadTlsCreds(dirs.good, 'client') }), isCode(TRANSPORT_ERR_TLS_HOSTNAME));
  await accepted;
  await listener.close();
});

test('tls: a verifying server refuses a client without a certificate or with one from another CA', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const dirs = needPki(t);
  if (dirs === null) return;
  const bare: TlsCreds = { ...loadTlsCreds(dirs.good, 'client'), cert: null, key: null };
  const noCert = await attempt(dirs.good, bare);
  assert.ok(isCode(TRANSPORT_ERR_TLS_VERIFY)(noCert.server), String(noCert.server));
  assert.match((noCert.server as Error).message, /client sent no certificate/);
  const foreign: TlsCreds = { ...loadTlsCreds(dirs.other, 'client'), ca: loadTlsCreds(dirs.good, 'client').ca };
  const foreignCert = await attempt(dirs.good, foreign);
  assert.ok(isCode(TRANSPORT_ERR_TLS_VERIFY)(foreignCert.server), String(foreignCert.server));
  assert.match((foreignCert.server as Error).message, /client certificate not trusted/);
});

test('tls: missing credential files are TLS_CREDS; a client dir without client-cert.pem loads', (t) => {
  const dirs = needPki(t);
  if (dirs === null) return;
  const empty = mkdtempSync(join(tmpdir(), 'livemig-creds-'));
  try {
    assert.throws(() => loadTlsCreds(empty, 'client'), isCode(TRANSPORT_ERR_TLS_CREDS));
    assert.throws(() => loadTlsCreds(empty, 'server'), isCode(TRANSPORT_ERR_TLS_CREDS));
    copyFileSync(join(dirs.good, 'ca-cert.pem'), join(empty, 'ca-cert.pem'));
    const anonymous = loadTlsCreds(empty, 'client');
    assert.equal(anonymous.cert, null);
    assert.equal(anonymous.key, null);
    assert.throws(() => loadTlsCreds(empty, 'server'), isCode(TRANSPORT_ERR_TLS_CREDS), 'a server needs its certificate');
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
  const server = loadTlsCreds(dirs.good, 'server');
  assert.ok(server.cert !== null && server.key !== null && server.verifyPeer);
});

test('tls: a cut TLS connection is ABORTED at the cutting end and RESET at the other', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const dirs = needPki(t);
  if (dirs === null) return;
  const listener = await listenTls(LOOPBACK, { creds: loadTlsCreds(dirs.good, 'server'), expectedConnections: 1 });
  const client = await connectTls(listener.address, { creds: loadTlsCreds(dirs.good, 'client') });
  const server = await listener.accept(5_000);
  await listener.close();
  let cutDone = false;
  const received = collect(server, (_chunk, total) => {
    if (!cutDone && total > 2 * MiB) {
      cutDone = true;
      client.destroy(new Error('cable cut'));
    }
  });
  void pumpBytes(client, randomBytes(32 * MiB), 9);
  const got = await within(received, 20_000, 'server close');
  assert.ok(isCode(TRANSPORT_ERR_RESET)(got.error), String(got.error));
  assert.ok(isCode(TRANSPORT_ERR_ABORTED)(await within(client.whenClosed(), 5_000, 'client close')));
});
