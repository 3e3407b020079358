/**
 * `livemig-qemu`: a livemig VM started with the part of qemu-system-x86_64's command line that
 * migration scripts and test harnesses use, so they can run livemig where they run QEMU:
 *
 *   -M none[,memory-backend=ID]   -m SIZE   -object memory-backend-ram|memory-backend-file,id=ID,
 *   size=SIZE[,mem-path=FILE][,share=on]   -object tls-creds-x509,id=ID,dir=DIR,endpoint=...
 *   -nodefaults  -display none  -nographic  -accel ...  -enable-kvm (all ignored)  -S
 *   -incoming URI|defer   -qmp unix:PATH,server=on,wait=off | tcp:HOST:PORT,server=on,wait=off
 *   -device virtio-balloon[-pci],free-page-hint=on,...   -name NAME   -pidfile FILE
 *   -smp 1   --version   -h
 *
 * Like QEMU's `-M none`, the machine has no vCPU (so nothing in the guest writes memory) and
 * its RAM block is `ram`, or the memory backend's id. Unknown options end the process with
 * QEMU's text (`qemu-system-x86_64: -foo: invalid option`) and status 1. `-daemonize` is
 * refused. A memory-backend-file with share=on is written back at exit (host/memory-backend.ts).
 */
import { QEMU_OPTIONS, QemuArgsError } from '../host/qemu-args.ts';
import { processIo, type CliIo } from './io.ts';
import { runVm, type VmFlavour } from './vm-command.ts';

/** The program name QEMU prefixes its error lines with. */
export const QEMU_PROGRAM = 'qemu-system-x86_64';

export const QEMU_COMPAT_FLAVOUR: VmFlavour = {
  program: QEMU_PROGRAM,
  // QEMU exits 1 on a bad command line; scripts driving it expect that.
  usageExitCode: 1,
  options: QEMU_OPTIONS,
  versionText: 'QEMU emulator version 7.2.0 (livemig 0.1.0)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n',
  helpText: [
    'QEMU emulator version 7.2.0 (livemig 0.1.0)',
    'usage: livemig-qemu [options]   (the subset of qemu-system-x86_64 options migration scripts use)',
    '-M none[,memory-backend=ID] -m SIZE -object memory-backend-ram|memory-backend-file|tls-creds-x509,...',
    '-device virtio-balloon[-pci],... -incoming URI|defer -qmp unix:PATH,server=on,wait=off -S',
    '-nodefaults -display none -accel ... -name NAME -pidfile FILE --version',
    '',
  ].join('\n'),
  finish: (config) => {
    if (config.vcpus > 1) throw new QemuArgsError('QEMU_ARGS_BAD_VALUE', `Invalid SMP CPUs ${config.vcpus}. The max CPUs supported by machine 'none' is 1`);
    // -M none has no vCPU to run anything: -smp 1 is accepted and leaves none.
    return { ...config, vcpus: 0 };
  },
};

/** Runs livemig-qemu with `argv` (the arguments only); returns the exit code. */
export function runQemuCompat(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  return runVm(argv, io, QEMU_COMPAT_FLAVOUR);
}
