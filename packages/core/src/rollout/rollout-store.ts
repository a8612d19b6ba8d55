import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigurationError, InvalidArgumentError } from '../spec/errors';

/** Where a rollout keeps its state, so that a new process continues it. */
export interface RolloutStore<State> {
  /** The saved state, or undefined when none was saved. */
  load(): Promise<State | undefined>;
  save(state: State): Promise<void>;
}

/**
 * A store in memory: a rollout survives a new provider instance in the same process (a
 * dispatcher rebuilt), not a process restart. The default.
 */
export function createMemoryRolloutStore<State>(): RolloutStore<State> {
  let saved: string | undefined;
  return {
    async load() {
      return saved === undefined ? undefined : (JSON.parse(saved) as State);
    },
    async save(state) {
      saved = JSON.stringify(state);
    },
  };
}

/** Options of `createJsonFileRolloutStore`. */
export interface JsonFileRolloutStoreOptions {
  /** The file that holds the state; its folder is created when missing. */
  path: string;
}

/**
 * A store in a JSON file, written atomically (a temporary file in the same folder, then a
 * rename), so that a crash mid-write leaves the previous state whole.
 *
 * @example
 * const store = createJsonFileRolloutStore({ path: '/var/lib/render-api/rollout.json' });
 */
export function createJsonFileRolloutStore<State>(options: JsonFileRolloutStoreOptions): RolloutStore<State> {
  if (
    options === null ||
    typeof options !== 'object' ||
    typeof options.path !== 'string' ||
    options.path === ''
  ) {
    throw new InvalidArgumentError({
      argument: 'path',
      message: '"path" must name the JSON file that holds the rollout state.',
    });
  }
  const { path } = options;
  return {
    async load() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
      try {
        return JSON.parse(text) as State;
      } catch (cause) {
        throw new ConfigurationError({
          message: `The rollout state in ${path} is not valid JSON: fix or delete the file (deleting it starts the rollout again).`,
          cause,
        });
      }
    },
    async save(state) {
      await mkdir(dirname(path), { recursive: true });
      const temporary = `${path}.${process.pid}.${randomUUID()}.tmp`;
      try {
        await writeFile(temporary, `${JSON.stringify(state, null, 2)}\n`, { encoding: 'utf8', flush: true });
        await rename(temporary, path);
      } catch (error) {
        await rm(temporary, { force: true });
        throw error;
      }
    },
  };
}
