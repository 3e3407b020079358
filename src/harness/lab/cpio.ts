/**
 * A newc ("070701") cpio archive writer, enough for a Linux initramfs: directories, regular
 * files, symlinks and character devices, everything owned by root with mtime 0, so the same
 * inputs give the same bytes (guest-lab's build-initramfs.py writes the same format).
 *
 * Each entry is a 110-byte ASCII header (13 fields of 8 hex digits after the magic), the
 * NUL-terminated name, padding to 4 bytes, the data, padding to 4 bytes. The archive ends with
 * a "TRAILER!!!" entry and is padded to 512 bytes.
 */

const MAGIC = '070701';
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

export class CpioWriter {
  private readonly parts: Uint8Array[] = [];
  private length = 0;
  private inode = 1;
  private readonly encoder = new TextEncoder();

  dir(name: string, perm = 0o755): void {
    this.entry(name, S_IFDIR | perm, new Uint8Array(0), 2);
  }

  file(name: string, data: Uint8Array, perm = 0o644): void {
    this.entry(name, S_IFREG | perm, data);
  }

  symlink(name: string, target: string): void {
    this.entry(name, S_IFLNK | 0o777, this.encoder.encode(target));
  }

  chardev(name: string, major: number, minor: number, perm = 0o600): void {
    this.entry(name, S_IFCHR | perm, new Uint8Array(0), 1, major, minor);
  }

  /** The archive: the entries, the trailer, padded to 512 bytes. */
  finish(): Uint8Array {
    this.entry('TRAILER!!!', 0, new Uint8Array(0), 1);
    this.pad(512);
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  private entry(name: string, mode: number, data: Uint8Array, nlink = 1, rdevMajor = 0, rdevMinor = 0): void {
    const nameBytes = this.encoder.encode(`${name}\0`);
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    const fields = [this.inode++, mode, 0, 0, nlink, 0, data.length, 0, 0, rdevMajor, rdevMinor, nameBytes.length, 0];
    const header = MAGIC + fields.map((v) => v.toString(16).padStart(8, '0')).join('');
    this.push(this.encoder.encode(header));
    this.push(nameBytes);
    this.pad(4);
    this.push(data);
    this.pad(4);
  }

  private push(bytes: Uint8Array): void {
    this.parts.push(bytes);
    this.length += bytes.length;
  }

  private pad(to: number): void {
    const rest = (to - (this.length % to)) % to;
    if (rest > 0) this.push(new Uint8Array(rest));
  }
}
