// The QEMU-style command-line parser: a table of command lines and what each gives (the
// interpreted VM configuration, or QEMU's exact error text), plus the QemuOpts splitter.
// Error texts are the ones qemu-system-x86_64 7.2 prints for the same arguments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MiB, GiB } from '../lib/units.ts';
import { LIVEMIG_VM_OPTIONS, QEMU_OPTIONS, QemuArgsError, parseQemuOpts, tokenizeQemuArgs } from './qemu-args.ts';
import { interpretVmArgs, type VmCommandLine } from './vm-args.ts';

function parse(args: string[], table = LIVEMIG_VM_OPTIONS): VmCommandLine {
  return interpretVmArgs(tokenizeQemuArgs(args, table));
}

function refusal(args: string[], table = LIVEMIG_VM_OPTIONS): string {
  try {
    parse(args, table);
  } catch (error) {
    assert.ok(error instanceof QemuArgsError, `expected QemuArgsError, got ${error}`);
    return error.message;
  }
  return assert.fail(`accepted: ${args.join(' ')}`);
}

const ACCEPTED: Array<{ readonly args: string[]; readonly expect: Partial<VmCommandLine> }> = [
  { args: [], expect: { ramSizeBytes: 128 * MiB, ramBlockName: 'ram', incoming: null, startPaused: false, vcpus: 0, qmp: [] } },
  { args: ['-m', '2G'], expect: { ramSizeBytes: 2 * GiB } },
  { args: ['-m', '512'], expect: { ramSizeBytes: 512 * MiB } },
  { args: ['--m', 'size=64M,slots=1,maxmem=1G'], expect: { ramSizeBytes: 64 * MiB } },
  { args: ['-m', '268435456B'], expect: { ramSizeBytes: 256 * MiB } },
  { args: ['-M', 'none', '-S', '-nodefaults', '-display', 'none', '-accel', 'kvm', '-enable-kvm'], expect: { startPaused: true } },
  {
    args: ['-machine', 'none,memory-backend=mem0', '-object', 'memory-backend-file,id=mem0,size=16M,mem-path=/dev/shm/x,share=on'],
    expect: { ramSizeBytes: 16 * MiB, ramBlockName: 'mem0', memoryBackend: { kind: 'file', id: 'mem0', sizeBytes: 16 * MiB, memPath: '/dev/shm/x', share: true, prealloc: false } },
  },
  {
    args: ['-M', 'none,memory-backend=m', '-m', '16M', '-object', 'memory-backend-ram,id=m,size=16M,prealloc=on'],
    expect: { ramBlockName: 'm', memoryBackend: { kind: 'ram', id: 'm', sizeBytes: 16 * MiB, memPath: null, share: false, prealloc: true } },
  },
  { args: ['-device', 'virtio-balloon'], expect: { balloon: { id: null, freePageHint: false, postcopyPolicy: 'refuse' } } },
  {
    args: ['-device', 'virtio-balloon-pci,id=b0,free-page-hint=on,free-page-hint-postcopy=track'],
    expect: { balloon: { id: 'b0', freePageHint: true, postcopyPolicy: 'track' } },
  },
  { args: ['-incoming', 'tcp:127.0.0.1:4444'], expect: { incoming: 'tcp:127.0.0.1:4444' } },
  { args: ['-incoming', 'unix:/tmp/m.sock'], expect: { incoming: 'unix:/tmp/m.sock' } },
  { args: ['-incoming', 'defer'], expect: { incoming: 'defer' } },
  { args: ['-qmp', 'unix:/tmp/q,,1.sock,server=on,wait=off'], expect: { qmp: [{ unix: '/tmp/q,1.sock' }] } },
  { args: ['-qmp', 'unix:/tmp/q.sock,server,nowait'], expect: { qmp: [{ unix: '/tmp/q.sock' }] } },
  { args: ['-qmp', 'tcp:127.0.0.1:4445,server=on,wait=off'], expect: { qmp: [{ tcp: { host: '127.0.0.1', port: 4445 } }] } },
  { args: ['-name', 'guest=vm1,debug-threads=on', '-pidfile', '/tmp/p'], expect: { name: 'vm1', pidfile: '/tmp/p' } },
  { args: ['--workload', 'incrementer', '--vcpus', '2'], expect: { vcpus: 2, workload: { kind: 'incrementer', sizeBytes: null, rateBytesPerS: 64 * MiB } } },
  { args: ['--workload=incrementer:32M:1G', '--seed=7'], expect: { vcpus: 1, seed: 7, workload: { kind: 'incrementer', sizeBytes: 32 * MiB, rateBytesPerS: GiB } } },
  { args: ['--workload', 'hot-set:8M:100M', '-smp', '4'], expect: { vcpus: 4, workload: { kind: 'hot-set', sizeBytes: 8 * MiB, rateBytesPerS: 100 * MiB } } },
  { args: ['--workload', 'random:10M'], expect: { workload: { kind: 'random', sizeBytes: null, rateBytesPerS: 10 * MiB } } },
  { args: ['--workload', 'idle', '--vcpus', '0'], expect: { vcpus: 0, workload: { kind: 'idle' } } },
  { args: [], expect: { vcpuNice: 0 } },
  { args: ['--vcpu-nice', '19'], expect: { vcpuNice: 19 } },
  {
    args: ['-object', 'tls-creds-x509,id=tls0,dir=/etc/pki,endpoint=server,verify-peer=off'],
    expect: { tlsCreds: [{ id: 'tls0', dir: '/etc/pki', endpoint: 'server', verifyPeer: false }] },
  },
  { args: ['--version'], expect: { showVersion: true } },
  { args: ['-version'], expect: { showVersion: true } },
  { args: ['-h'], expect: { showHelp: true } },
];

test('accepted command lines give the expected configuration', () => {
  for (const { args, expect } of ACCEPTED) {
    const config = parse(args);
    for (const [key, value] of Object.entries(expect)) {
      assert.deepEqual(config[key as keyof VmCommandLine], value, `${args.join(' ')}: ${key}`);
    }
  }
});

const REFUSED: Array<{ readonly args: string[]; readonly text: string; readonly table?: typeof QEMU_OPTIONS }> = [
  { args: ['-foo'], text: '-foo: invalid option' },
  { args: ['-m'], text: '-m: requires an argument' },
  { args: ['-m', '12X'], text: "-m 12X: Parameter 'size' expects a non-negative number below 2^64" },
  { args: ['-M', 'pc'], text: 'unsupported machine type' },
  { args: ['-device', 'foo'], text: "-device foo: 'foo' is not a valid device model name" },
  { args: ['-device', 'virtio-balloon,bogus=1'], text: "-device virtio-balloon,bogus=1: Property 'virtio-balloon-pci.bogus' not found" },
  { args: ['-device', 'virtio-balloon,free-page-hint-postcopy=maybe'], text: "-device virtio-balloon,free-page-hint-postcopy=maybe: Parameter 'free-page-hint-postcopy' does not accept value 'maybe'" },
  { args: ['-object', 'foo,id=x'], text: "-object foo,id=x: Parameter 'qom-type' does not accept value 'foo'" },
  { args: ['-object', 'memory-backend-ram,id=m0'], text: "-object memory-backend-ram,id=m0: Parameter 'size' is missing" },
  { args: ['-object', 'memory-backend-file,id=m0,size=16M'], text: "-object memory-backend-file,id=m0,size=16M: Parameter 'mem-path' is missing" },
  { args: ['-M', 'none,memory-backend=m1', '-m', '16M'], text: "Memory backend 'm1' not found" },
  { args: ['-M', 'none,memory-backend=m0', '-m', '32M', '-object', 'memory-backend-ram,id=m0,size=16M'], text: 'Machine memory size does not match the size of the memory backend' },
  { args: ['-incoming', 'foo:bar'], text: '-incoming foo:bar: unknown migration protocol: foo:bar' },
  { args: ['-qmp', 'unix:/tmp/q.sock,server=off'], text: '-qmp unix:/tmp/q.sock,server=off: livemig serves QMP only in server mode (server=on)' },
  { args: ['--workload', 'spin'], text: '--workload spin: expects idle, incrementer[:SIZE[:RATE]], hot-set:SIZE:RATE, random:RATE[:SIZE] or kernel-build[:USED[:RATE]]' },
  { args: ['--workload', 'incrementer', '--vcpus', '0'], text: '--workload needs at least one vCPU (--vcpus N)' },
  { args: ['--vcpus', '99'], text: '--vcpus 99: expects an integer from 0 to 16' },
  { args: ['--vcpu-nice', '20'], text: '--vcpu-nice 20: expects an integer from 0 to 19' },
  { args: ['--vcpu-nice', '-5'], text: '--vcpu-nice -5: expects an integer from 0 to 19' },
  { args: ['disk.img'], text: 'disk.img: unexpected argument (livemig has no disk images)' },
  { args: ['--workload', 'idle'], text: '--workload: invalid option', table: QEMU_OPTIONS },
];

test('refused command lines give QEMU\'s texts', () => {
  for (const { args, text, table } of REFUSED) assert.equal(refusal(args, table), text, args.join(' '));
});

test('a bad size also prints QEMU\'s suffix hint', () => {
  try {
    parse(['-m', '1Q']);
    assert.fail('accepted');
  } catch (error) {
    assert.ok(error instanceof QemuArgsError);
    assert.equal(error.extraLines.length, 2);
    assert.match(error.extraLines[0], /^Optional suffix k, M, G/);
  }
});

test('parseQemuOpts splits QemuOpts strings', () => {
  assert.deepEqual(parseQemuOpts('virtio-balloon,a=1,b,c=x,,y', 'driver', 'w'), { implied: 'virtio-balloon', entries: [['a', '1'], ['b', 'on'], ['c', 'x,y']] });
  assert.deepEqual(parseQemuOpts('size=1G', 'size', 'w'), { implied: null, entries: [['size', '1G']] });
  assert.deepEqual(parseQemuOpts('a=1', null, 'w'), { implied: null, entries: [['a', '1']] });
  assert.throws(() => parseQemuOpts('a=1,,,b=2,', null, 'w'), /Invalid parameter ''/);
});
