import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { type CliCommand, type CliIo, processIo } from './cli-io';
import { modelsCommand } from './models-command';
import { simulateCommand } from './simulate-command';

export type { CliCommand, CliIo } from './cli-io';

/**
 * The subcommands of `comfy-serverless`, by name. Another package's command is added with
 * one line here, e.g. `models: modelsCommand,`.
 */
export const COMMANDS: Record<string, CliCommand> = {
  models: modelsCommand,
  simulate: simulateCommand,
};

const USAGE = `Usage: comfy-serverless <command> [options]

Commands:
${Object.keys(COMMANDS)
  .map((name) => `  ${name}`)
  .join('\n')}

Run \`comfy-serverless <command> --help\` for a command's options.
`;

/**
 * Runs the CLI with `argv` (the arguments after the program name) and returns the exit
 * code: 0 on success, 2 on a usage or input error.
 *
 * @example
 * const code = await runCli(['simulate', '--trace', 'requests.csv', '--policy', 'predictive', '--json']);
 */
export async function runCli(argv: string[], io: CliIo = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    io.stdout(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    io.stderr(`Unknown command "${name}".\n${USAGE}`);
    return 2;
  }
  return command(rest, io);
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  runCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
