/**
 * `-device virtio-mem[-pci]` on a VM's command line (vm-args.ts reads the rest): QEMU's
 * spelling, `-object memory-backend-ram,id=MEM,size=SIZE -device virtio-mem-pci,id=ID,
 * memdev=MEM,requested-size=SIZE[,block-size=SIZE]` with `-m SIZE,maxmem=MAX` (QEMU 7.2 needs
 * maxmem for any memory device, and MAX - SIZE must hold the backend). The backend becomes a
 * second RAM block named after it, placed right after boot RAM (livemig's `none` machine has
 * no PCI hole; QEMU itself refuses virtio-mem-pci on `-M none`: "No 'PCI' bus found"). The
 * texts of every refusal, and their order, are QEMU 7.2's, checked against qemu-system-x86_64
 * with `-M q35` (vm-args-virtio-mem.test.ts).
 */
import { VIRTIO_MEM_DEFAULT_BLOCK_SIZE_BYTES, VIRTIO_MEM_MIN_BLOCK_SIZE_BYTES } from '../devices/virtio-mem/constants.ts';
import { badValue as bad, checkKeys, optValue, parseSizeOption as parseSize, type QemuOpts } from './qemu-args.ts';
import type { MemoryBackendSpec } from './vm-args.ts';

/** A `-device virtio-mem[-pci]` with its memory backend, placed after boot RAM. */
export interface VirtioMemSpec {
  readonly id: string | null;
  /** The memdev's id: the name of the region's RAM block. */
  readonly memdev: string;
  readonly regionSizeBytes: number;
  readonly requestedSizeBytes: number;
  readonly blockSizeBytes: number;
  /** Guest-physical start of the region (the boot RAM size). */
  readonly addrBytes: number;
}

/** `-m [size=]SIZE[,slots=N,maxmem=SIZE]`, read. */
export interface RamOption {
  readonly sizeBytes: number;
  readonly maxmemBytes: number | null;
}

/** A `-device virtio-mem[-pci]` as written; checked against its backend in resolveVirtioMem. */
export interface VirtioMemDraft {
  readonly what: string;
  readonly id: string | null;
  readonly memdev: string;
  readonly requestedText: string;
  readonly blockText: string | null;
}

/** The `-device virtio-mem[-pci]` options (`driver` is the model name as written). */
export function parseVirtioMemDevice(opts: QemuOpts, driver: string, what: string): VirtioMemDraft {
  checkKeys(opts, ['driver', 'id', 'bus', 'addr', 'memdev', 'requested-size', 'block-size', 'node', 'prealloc', 'unplugged-inaccessible'], driver, what);
  const memdev = optValue(opts, 'memdev');
  if (memdev === undefined) throw bad(`${what}: 'memdev' property must be set`);
  return { what, id: optValue(opts, 'id') ?? null, memdev, requestedText: optValue(opts, 'requested-size') ?? '0', blockText: optValue(opts, 'block-size') ?? null };
}

/** The virtio-mem device against its backend, `-m`'s maxmem and boot RAM (QEMU's checks). */
export function resolveVirtioMem(draft: VirtioMemDraft, backends: readonly MemoryBackendSpec[], machineBackend: string | null, ram: RamOption): VirtioMemSpec {
  const { what } = draft;
  const backend = backends.find((o) => o.id === draft.memdev);
  if (backend === undefined) throw bad(`${what}: Device '${draft.memdev}' not found`);
  if (backend.id === machineBackend) throw bad(`${what}: 'memdev' property specifies a busy memdev: ${backend.id}`);
  if (backend.kind !== 'ram') throw bad(`${what}: livemig's virtio-mem needs a memory-backend-ram`);
  const requestedSizeBytes = parseSize(draft.requestedText, what, 'requested-size');
  const blockSizeBytes = draft.blockText === null ? VIRTIO_MEM_DEFAULT_BLOCK_SIZE_BYTES : parseSize(draft.blockText, what, 'block-size');
  if (blockSizeBytes < VIRTIO_MEM_MIN_BLOCK_SIZE_BYTES) throw bad(`${what}: 'block-size' property has to be at least 0x${VIRTIO_MEM_MIN_BLOCK_SIZE_BYTES.toString(16)}`);
  if (!Number.isInteger(Math.log2(blockSizeBytes))) throw bad(`${what}: 'block-size' property has to be a power of two`);
  if (ram.maxmemBytes === null) throw bad(`${what}: memory devices (e.g. for memory hotplug) are not enabled, please specify the maxmem option`);
  const spaceBytes = ram.maxmemBytes - ram.sizeBytes;
  if (backend.sizeBytes > spaceBytes) throw bad(`${what}: not enough space, currently 0x0 in use of total space for memory devices 0x${spaceBytes.toString(16)}`);
  if (backend.sizeBytes % blockSizeBytes !== 0) throw bad(`${what}: backend memory size must be multiple of 0x${blockSizeBytes.toString(16)}`);
  if (requestedSizeBytes % blockSizeBytes !== 0) throw bad(`${what}: 'requested-size' property has to be multiples of 'block-size' (0x${blockSizeBytes.toString(16)})`);
  if (requestedSizeBytes > backend.sizeBytes) throw bad(`${what}: 'requested-size' property exceeds the memory backend size`);
  if (ram.sizeBytes % blockSizeBytes !== 0) throw bad(`${what}: livemig places the region after boot RAM, so -m must be a multiple of 'block-size' (0x${blockSizeBytes.toString(16)})`);
  return { id: draft.id, memdev: backend.id, regionSizeBytes: backend.sizeBytes, requestedSizeBytes, blockSizeBytes, addrBytes: ram.sizeBytes };
}
