/**
 * The guest lab's kernel and initramfs, from Debian packages only (a port of guest-lab's
 * build-initramfs.py): the kernel image package linux-image-amd64 depends on and busybox-static
 * are fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a cache directory
 * (nothing is installed, /boot is not touched). The initramfs holds /init (guest-init.sh), a
 * static busybox, /dev/console and /dev/null, and the virtio modules virtio-pci and
 * virtio_balloon need, in insmod order from their modinfo `depends=`.
 *
 * Cache: $GUEST_LAB_CACHE, else <tmpdir>/livemig-guest-lab. About 540 MB with the unpacked
 * kernel package; the first build downloads about 72 MB.
 *
 * What it deliberately doesn't do: the PVH boot of guest-lab (it needs an xz decompressor;
 * the bzImage boots about 5 s slower under TCG, which only lengthens a run).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { CpioWriter } from './cpio.ts';

/** Modules wanted for virtio-pci + virtio_balloon (dependencies come from modinfo). */
export const LAB_MODULES = ['virtio_ring', 'virtio', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio_pci', 'virtio_balloon'];

/** What a build gives. */
export interface LabArtifacts {
  readonly kernelPackage: string;
  readonly kernelVersion: string;
  /** The bzImage to boot with -kernel. */
  readonly vmlinuz: string;
  /** The gzip'd newc initramfs. */
  readonly initrd: string;
  /** insmod order. */
  readonly modules: readonly string[];
  readonly cache: string;
}

/** A missing tool or a failed download: the lab cannot run here (the message says why). */
export class LabUnavailableError extends Error {
  override name = 'LabUnavailableError';
}

export function labCacheDir(): string {
  const dir = process.env.GUEST_LAB_CACHE ?? join(tmpdir(), 'livemig-guest-lab');
  mkdirSync(dir, { recursive: true });
  return dir;
}

function run(cmd: string, args: readonly string[], cwd?: string): string {
  const r = spawnSync('timeout', ['600', cmd, ...args], { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error !== undefined) throw new LabUnavailableError(`cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new LabUnavailableError(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** The tools a build needs, or the first one missing. */
export function missingTool(): string | null {
  for (const tool of ['apt-get', 'apt-cache', 'dpkg-deb', 'timeout']) {
    const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
    if (r.status !== 0) return tool;
  }
  return null;
}

function kernelPackage(): string {
  const out = run('apt-cache', ['depends', 'linux-image-amd64']);
  const m = /Depends:\s*(linux-image-[0-9]\S*-amd64)\b/.exec(out);
  if (m === null) throw new LabUnavailableError(`cannot tell the kernel package from apt-cache depends linux-image-amd64:\n${out}`);
  return m[1];
}

function fetchDeb(pkg: string, debs: string): string {
  mkdirSync(debs, { recursive: true });
  const have = (): string[] => readdirSync(debs).filter((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb')).sort();
  if (have().length === 0) {
    try {
      run('apt-get', ['download', pkg], debs);
    } catch (error) {
      throw new LabUnavailableError(`apt-get download ${pkg} failed: the lab needs the Debian archive (network access for apt). ${(error as Error).message}`);
    }
  }
  const found = have();
  if (found.length === 0) throw new LabUnavailableError(`apt-get download ${pkg} produced no .deb`);
  return join(debs, found[found.length - 1]);
}

function unpack(deb: string, root: string): string {
  const stamp = join(root, '.from');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === basename(deb)) return root;
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  run('dpkg-deb', ['-x', deb, root]);
  writeFileSync(stamp, basename(deb));
  return root;
}

/** `depends=` from the .modinfo strings of an uncompressed .ko. */
export function modinfoDepends(ko: Uint8Array): string[] {
  const text = Buffer.from(ko).toString('latin1');
  const m = /(?:^|\0)depends=([^\0]*)\0/.exec(text);
  return m === null ? [] : m[1].split(',').filter((d) => d !== '');
}

/** insmod order of `wanted` (dependencies first); built-ins are skipped. */
export function insmodOrder(wanted: readonly string[], kos: ReadonlyMap<string, Uint8Array>, builtin: ReadonlySet<string>): string[] {
  const order: string[] = [];
  const visit = (name: string, stack: readonly string[]): void => {
    if (order.includes(name) || builtin.has(name)) return;
    if (stack.includes(name)) throw new LabUnavailableError(`module dependency cycle: ${[...stack, name].join(' > ')}`);
    const ko = kos.get(name);
    if (ko === undefined) throw new LabUnavailableError(`module ${name} is neither built in nor in drivers/virtio`);
    for (const dep of modinfoDepends(ko)) visit(dep, [...stack, name]);
    order.push(name);
  };
  for (const name of wanted) visit(name, []);
  return order;
}

/** Downloads (once), unpacks (once) and writes the initramfs when its inputs changed. */
export function buildLabArtifacts(initScript: Uint8Array): LabArtifacts {
  const cache = labCacheDir();
  const debs = join(cache, 'debs');
  const pkg = kernelPackage();
  const kdeb = fetchDeb(pkg, debs);
  const bdeb = fetchDeb('busybox-static', debs);
  const kroot = unpack(kdeb, join(cache, 'x', pkg));
  const broot = unpack(bdeb, join(cache, 'x', 'busybox-static'));
  const vmlinuzName = readdirSync(join(kroot, 'boot')).filter((f) => f.startsWith('vmlinuz-')).sort()[0];
  if (vmlinuzName === undefined) throw new LabUnavailableError(`${kdeb} has no /boot/vmlinuz-*`);
  const kver = vmlinuzName.slice('vmlinuz-'.length);
  const moddir = join(kroot, 'lib', 'modules', kver);
  const builtinPath = join(moddir, 'modules.builtin');
  const builtin = new Set(existsSync(builtinPath)
    ? readFileSync(builtinPath, 'utf8').split('\n').filter((l) => l.trim().endsWith('.ko')).map((l) => basename(l.trim(), '.ko'))
    : []);
  const virtioDir = join(moddir, 'kernel', 'drivers', 'virtio');
  const kos = new Map<string, Uint8Array>();
  for (const f of readdirSync(virtioDir)) {
    if (!f.includes('.ko')) continue;
    if (!f.endsWith('.ko')) throw new LabUnavailableError(`compressed module ${f} is not supported (busybox insmod)`);
    kos.set(f.slice(0, -3), readFileSync(join(virtioDir, f)));
  }
  const order = insmodOrder(LAB_MODULES, kos, builtin);
  const out = join(cache, 'out');
  mkdirSync(out, { recursive: true });
  const initrd = join(out, `initrd-${kver}.gz`);
  const key = createHash('sha256').update(initScript).update(basename(kdeb)).update(basename(bdeb)).update(order.join(',')).digest('hex');
  const stamp = `${initrd}.key`;
  if (!existsSync(initrd) || !existsSync(stamp) || readFileSync(stamp, 'utf8') !== key) {
    const c = new CpioWriter();
    for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp', 'mnt', 'lib', 'lib/modules']) c.dir(d);
    c.chardev('dev/console', 5, 1);
    c.chardev('dev/null', 1, 3, 0o666);
    c.file('init', initScript, 0o755);
    c.file('bin/busybox', readFileSync(join(broot, 'bin', 'busybox')), 0o755);
    c.symlink('bin/sh', 'busybox');
    for (const name of order) c.file(`lib/modules/${name}.ko`, kos.get(name) as Uint8Array);
    const listed = [...order, ...LAB_MODULES.filter((m) => builtin.has(m))];
    c.file('lib/modules/order', new TextEncoder().encode(`${listed.join('\n')}\n`));
    writeFileSync(`${initrd}.tmp`, gzipSync(c.finish(), { level: 9 }));
    writeFileSync(initrd, readFileSync(`${initrd}.tmp`));
    rmSync(`${initrd}.tmp`);
    writeFileSync(stamp, key);
  }
  return { kernelPackage: pkg, kernelVersion: kver, vmlinuz: join(kroot, 'boot', vmlinuzName), initrd, modules: order, cache };
}
