// `-device virtio-mem-pci` on livemig's command line: what an accepted one gives, and the
// refusals, each with the text qemu-system-x86_64 7.2 prints for the same device (run with
// `-M q35 -accel tcg -nodefaults -display none -S`; docs/real-mode.md lists the commands).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MiB } from '../lib/units.ts';
import { LIVEMIG_VM_OPTIONS, QemuArgsError, tokenizeQemuArgs } from './qemu-args.ts';
import { interpretVmArgs, type VmCommandLine } from './vm-args.ts';

const MEM1 = ['-object', 'memory-backend-ram,id=mem1,size=1G'];

function parse(args: string[]): VmCommandLine {
  return interpretVmArgs(tokenizeQemuArgs(args, LIVEMIG_VM_OPTIONS));
}

function refusal(args: string[]): string {
  try {
    parse(args);
  } catch (error) {
    assert.ok(error instanceof QemuArgsError, `expected QemuArgsError, got ${error}`);
    return error.message;
  }
  return assert.fail(`accepted: ${args.join(' ')}`);
}

test('virtio-mem-pci with a memdev and maxmem gives a region after boot RAM', () => {
  const config = parse(['-m', '128M,maxmem=2G', ...MEM1, '-device', 'virtio-mem-pci,id=vmem0,memdev=mem1,requested-size=512M,block-size=4M']);
  assert.equal(config.ramSizeBytes, 128 * MiB);
  assert.deepEqual(config.virtioMem, { id: 'vmem0', memdev: 'mem1', regionSizeBytes: 1024 * MiB, requestedSizeBytes: 512 * MiB, blockSizeBytes: 4 * MiB, addrBytes: 128 * MiB });
  const defaults = parse(['-m', '128M,maxmem=2G', ...MEM1, '-device', 'virtio-mem,memdev=mem1']);
  assert.deepEqual(defaults.virtioMem, { id: null, memdev: 'mem1', regionSizeBytes: 1024 * MiB, requestedSizeBytes: 0, blockSizeBytes: 2 * MiB, addrBytes: 128 * MiB });
  assert.equal(parse([]).virtioMem, null);
});

const REFUSED: Array<{ readonly args: string[]; readonly text: string }> = [
  {
    args: ['-m', '128M', ...MEM1, '-device', 'virtio-mem-pci,id=vmem0,memdev=mem1,requested-size=512M'],
    text: '-device virtio-mem-pci,id=vmem0,memdev=mem1,requested-size=512M: memory devices (e.g. for memory hotplug) are not enabled, please specify the maxmem option',
  },
  {
    args: ['-m', '128M,maxmem=512M', ...MEM1, '-device', 'virtio-mem-pci,id=vmem0,memdev=mem1,requested-size=512M'],
    text: '-device virtio-mem-pci,id=vmem0,memdev=mem1,requested-size=512M: not enough space, currently 0x0 in use of total space for memory devices 0x18000000',
  },
  { args: ['-m', '256M,maxmem=128M'], text: 'invalid value of maxmem: maximum memory size (0x8000000) must be at least the initial memory size (0x10000000)' },
  {
    args: ['-m', '128M,maxmem=2G', ...MEM1, '-device', 'virtio-mem-pci,id=vmem0,memdev=mem1,requested-size=512M,block-size=1K'],
    text: "-device virtio-mem-pci,id=vmem0,memdev=mem1,requested-size=512M,block-size=1K: 'block-size' property has to be at least 0x100000",
  },
  {
    args: ['-m', '128M,maxmem=2G', ...MEM1, '-device', 'virtio-mem-pci,id=vmem0,memdev=mem1,block-size=3M'],
    text: "-device virtio-mem-pci,id=vmem0,memdev=mem1,block-size=3M: 'block-size' property has to be a power of two",
  },
  {
    args: ['-m', '128M,maxmem=2G', ...MEM1, '-device', 'virtio-mem-pci,id=vmem0,memdev=mem1,requested-size=3M,block-size=2M'],
    text: "-device virtio-mem-pci,id=vmem0,memdev=mem1,requested-size=3M,block-size=2M: 'requested-size' property has to be multiples of 'block-size' (0x200000)",
  },
  {
    args: ['-m', '128M,maxmem=2G', ...MEM1, '-device', 'virtio-mem-pci,id=vmem0,requested-size=512M'],
    text: "-device virtio-mem-pci,id=vmem0,requested-size=512M: 'memdev' property must be set",
  },
  { args: ['-m', '128M,maxmem=2G', ...MEM1, '-device', 'virtio-mem-pci,id=vmem0,memdev=nope'], text: "-device virtio-mem-pci,id=vmem0,memdev=nope: Device 'nope' not found" },
  {
    args: ['-M', 'none,memory-backend=mem1', '-m', '128M,maxmem=2G', '-object', 'memory-backend-ram,id=mem1,size=128M', '-device', 'virtio-mem-pci,id=vmem0,memdev=mem1'],
    text: "-device virtio-mem-pci,id=vmem0,memdev=mem1: 'memdev' property specifies a busy memdev: mem1",
  },
  {
    args: ['-m', '128M,maxmem=2G', '-object', 'memory-backend-ram,id=mem1,size=3M', '-device', 'virtio-mem-pci,id=vmem0,memdev=mem1'],
    text: '-device virtio-mem-pci,id=vmem0,memdev=mem1: backend memory size must be multiple of 0x200000',
  },
  { args: ['-m', '128M,maxmem=2G', ...MEM1, '-device', 'virtio-mem-pci,id=vmem0,memdev=mem1,foo=1'], text: "-device virtio-mem-pci,id=vmem0,memdev=mem1,foo=1: Property 'virtio-mem-pci.foo' not found" },
];

test('virtio-mem-pci refusals carry QEMU 7.2 texts', () => {
  for (const { args, text } of REFUSED) assert.equal(refusal(args), text, args.join(' '));
});

test("livemig's own virtio-mem limits are stated", () => {
  assert.equal(
    refusal(['-m', '129M,maxmem=2G', ...MEM1, '-device', 'virtio-mem-pci,memdev=mem1']),
    "-device virtio-mem-pci,memdev=mem1: livemig places the region after boot RAM, so -m must be a multiple of 'block-size' (0x200000)",
  );
  assert.equal(
    refusal(['-m', '128M,maxmem=2G', '-object', 'memory-backend-file,id=mem1,size=1G,mem-path=/dev/shm/x', '-device', 'virtio-mem-pci,memdev=mem1']),
    "-device virtio-mem-pci,memdev=mem1: livemig's virtio-mem needs a memory-backend-ram",
  );
  assert.equal(
    refusal(['-m', '128M,maxmem=2G', ...MEM1, '-device', 'virtio-mem-pci,memdev=mem1,requested-size=2G']),
    "-device virtio-mem-pci,memdev=mem1,requested-size=2G: 'requested-size' property exceeds the memory backend size",
  );
});
