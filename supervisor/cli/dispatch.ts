/** Command dispatch shared by `fedai` and `fedai-node`: help, unknown commands, usage errors. */
import { EXIT_FAIL, EXIT_OK, EXIT_USAGE, UsageError, type CliCommand, type CliIO } from './command.js';

export async function dispatch(program: string, commands: CliCommand[], argv: string[], io: CliIO, defaultCommand?: string): Promise<number> {
  const help = () =>
    `usage: ${program} <command> [options]\n\ncommands:\n` +
    commands.map((c) => `  ${c.name.padEnd(18)} ${c.summary}`).join('\n') +
    `\n\nRun '${program} <command> --help' for a command's options.\n`;
  if (argv.length === 0 && !defaultCommand) {
    io.stderr(help());
    return EXIT_USAGE;
  }
  if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.stdout(help());
    return EXIT_OK;
  }
  // Longest match first, so "metering verify" wins over a hypothetical "metering".
  const sorted = [...commands].sort((a, b) => b.name.split(' ').length - a.name.split(' ').length);
  let cmd: CliCommand | undefined;
  let rest: string[] = argv;
  for (const c of sorted) {
    const words = c.name.split(' ');
    if (words.every((w, i) => argv[i] === w)) {
      cmd = c;
      rest = argv.slice(words.length);
      break;
    }
  }
  if (!cmd && defaultCommand && (argv.length === 0 || argv[0]!.startsWith('-'))) {
    cmd = commands.find((c) => c.name === defaultCommand);
    rest = argv;
  }
  if (!cmd) {
    io.stderr(`${program}: unknown command "${argv[0]}"\n\n${help()}`);
    return EXIT_USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(cmd.usage.endsWith('\n') ? cmd.usage : cmd.usage + '\n');
    return EXIT_OK;
  }
  try {
    return await cmd.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`${program} ${cmd.name}: ${err.message}\n\n${cmd.usage}\n`);
      return EXIT_USAGE;
    }
    io.stderr(`${program} ${cmd.name}: ${(err as Error).message}\n`);
    return EXIT_FAIL;
  }
}

export function processIO(): CliIO {
  return {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    env: process.env,
    cwd: process.cwd(),
  };
}
