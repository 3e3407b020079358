/**
 * Test-only x509 material, generated at test time with the `openssl` CLI into a temp dir laid
 * out like QEMU's tls-creds-x509 `dir` (ca-cert.pem, server-cert.pem, server-key.pem,
 * client-cert.pem, client-key.pem). No key is ever committed. Keys are EC P-256, which
 * openssl makes in milliseconds; certificates are valid for two days.
 *
 * `makeTestPki` builds one CA with a server certificate for `localhost`, 127.0.0.1 and ::1,
 * and a client certificate; called twice it gives two unrelated CAs (the "wrong CA" case).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Null when openssl runs, else why not (for a skip message). */
export function opensslUnavailableReason(): string | null {
  const run = spawnSync('openssl', ['version'], { encoding: 'utf8', timeout: 10_000 });
  if (run.error !== undefined) return `openssl not runnable: ${run.error.message}`;
  return run.status === 0 ? null : `openssl version exited ${run.status}`;
}

function openssl(cwd: string, args: readonly string[]): void {
  const run = spawnSync('openssl', args, { cwd, encoding: 'utf8', timeout: 30_000 });
  if (run.error !== undefined || run.status !== 0) {
    throw new Error(`openssl ${args.join(' ')} failed: ${run.error?.message ?? run.stderr}`);
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(work: string, name: string): void {
  openssl(work, ['req', '-x509', ...EC_KEY, '-keyout', `${name}-key.pem`, '-out', `${name}-cert.pem`,
    '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
}

function makeLeaf(work: string, ca: string, leaf: string, subject: string, extensions: string, serial: number): void {
  writeFileSync(join(work, `${leaf}.ext`), extensions);
  openssl(work, ['req', ...EC_KEY, '-keyout', `${leaf}-key.pem`, '-out', `${leaf}.csr`, '-subj', subject]);
  openssl(work, ['x509', '-req', '-in', `${leaf}.csr`, '-CA', `${ca}-cert.pem`, '-CAkey', `${ca}-key.pem`,
    '-set_serial', String(serial), '-days', '2', '-out', `${leaf}-cert.pem`, '-extfile', `${leaf}.ext`]);
}

export interface TestPki {
  /** Root temp dir; remove with `dispose`. */
  readonly root: string;
  /** A tls-creds-x509 dir with the CA and both endpoints' certificates and keys. */
  readonly credsDir: string;
  dispose(): void;
}

/** Generates a CA plus server and client certificates into a fresh tls-creds-x509 dir. */
export function makeTestPki(label: string): TestPki {
  const root = mkdtempSync(join(tmpdir(), `livemig-pki-${label}-`));
  const work = join(root, 'work');
  const credsDir = join(root, 'creds');
  mkdirSync(work);
  mkdirSync(credsDir);
  makeCa(work, 'ca');
  makeLeaf(work, 'ca', 'server', '/CN=localhost',
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n', 2);
  makeLeaf(work, 'ca', 'client', `/CN=livemig-client-${label}`,
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n', 3);
  for (const file of ['ca-cert.pem', 'server-cert.pem', 'server-key.pem', 'client-cert.pem', 'client-key.pem']) {
    copyFileSync(join(work, file), join(credsDir, file));
  }
  return { root, credsDir, dispose: () => rmSync(root, { recursive: true, force: true }) };
}
