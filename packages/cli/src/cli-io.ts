import { readFile, writeFile } from 'node:fs/promises';

/** Where the CLI reads and writes; tests pass their own. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readFile: (path: string) => Promise<string>;
  writeFile: (path: string, text: string) => Promise<void>;
  /** Directory relative paths are resolved from. */
  cwd: string;
  /** Whether stderr is a terminal (a progress bar is drawn only then, unless forced). */
  isTerminal?: boolean;
}

/** The real process's streams and files. */
export function processIo(): CliIo {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    readFile: (path) => readFile(path, 'utf8'),
    writeFile: (path, text) => writeFile(path, text, 'utf8'),
    cwd: process.cwd(),
    isTerminal: process.stderr.isTTY === true,
  };
}

/** A command of the CLI: takes the arguments after its name, returns the exit code. */
export type CliCommand = (argv: string[], io: CliIo) => Promise<number>;
