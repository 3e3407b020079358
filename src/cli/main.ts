/** The livemig command line. Subcommands are added as the capabilities land. */
import { Command } from 'commander';

export async function main(argv: string[]): Promise<number> {
  const program = new Command('livemig');
  program.description('Live migration of VM memory, speaking QEMU 7.2\'s stream format and QMP');
  await program.parseAsync(argv);
  return 0;
}
