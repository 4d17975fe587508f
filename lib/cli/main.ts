#!/usr/bin/env node
// The `dsk` command: dispatches to subcommands. Each subcommand lives with its area and exports
// `(argv) => Promise<exit code>`; add one line to COMMANDS to register another.
import { launchCommand } from '../dist/launch';

type Command = { run: (argv: readonly string[]) => Promise<number>; help: string };

const COMMANDS: Record<string, Command> = {
  launch: { run: launchCommand, help: 'start one process per GPU of a script that calls dsk.dist.init()' },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.help}`);
  return `usage: dsk <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`dsk: unknown command ${JSON.stringify(name)}\n${usage()}`);
    return 2;
  }
  return cmd.run(rest);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (e: unknown) => {
      process.stderr.write(`dsk: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
