#!/usr/bin/env node
// livemig-qemu: a livemig VM behind the qemu-system-x86_64 command line that migration
// scripts use (src/cli/qemu-compat-command.ts). Registers the TypeScript loader (tsx, an
// installed dependency), runs, and exits with the VM's status.
import { register } from 'tsx/esm/api';
register();
const { runQemuCompat } = await import('../src/cli/qemu-compat-command.ts');
process.exit(await runQemuCompat(process.argv.slice(2)));
