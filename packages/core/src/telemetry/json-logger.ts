import { InvalidArgumentError } from '../spec/errors';
import { redactValue } from './redact';

/** The log levels, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** One logging method, as pino has it: a fields object, then a message. */
export type LogMethod = (fields: Record<string, unknown>, message?: string) => void;

/**
 * Any pino-compatible logger: `info(fields, message)` and the like. A pino logger is one;
 * so is `createJsonLogger()`.
 */
export interface LoggerLike {
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
}

/** Options of `createJsonLogger`. */
export interface JsonLoggerOptions {
  /** Receives each line, newline included. @default writes to process.stdout */
  write?: (line: string) => void;
  /** Lines below this level are dropped. @default 'info' */
  level?: LogLevel;
  /** Values removed from every line (API keys), on top of presigned-URL signatures and bearer tokens. */
  secrets?: readonly string[];
  /** Time for lines that bring no `timestamp` of their own. @default Date.now */
  now?: () => number;
}

const LEVELS: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50 };

/**
 * A minimal JSON-lines logger for those who do not use pino: one JSON object per line with
 * `timestamp`, `level`, the fields, and `msg`. Secrets are redacted.
 *
 * @example
 * const logger = createJsonLogger({ level: 'debug' });
 * attachLogger(dispatcher, logger, { service: 'render-api' });
 */
export function createJsonLogger(options: JsonLoggerOptions = {}): LoggerLike {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError({
      argument: 'options',
      message: `createJsonLogger takes an options object; got ${String(options)}.`,
    });
  }
  if (options.level !== undefined && !(options.level in LEVELS)) {
    throw new InvalidArgumentError({
      argument: 'level',
      message: `"level" must be one of debug, info, warn, error; got ${JSON.stringify(options.level)}.`,
    });
  }
  if (options.write !== undefined && typeof options.write !== 'function') {
    throw new InvalidArgumentError({
      argument: 'write',
      message: '"write" must be a function that takes one line of text.',
    });
  }
  const write = options.write ?? ((line: string) => process.stdout.write(line));
  const threshold = LEVELS[options.level ?? 'info'];
  const secrets = [...(options.secrets ?? [])];
  const now = options.now ?? Date.now;
  const method =
    (level: LogLevel): LogMethod =>
    (fields, message) => {
      if (LEVELS[level] < threshold) return;
      const safe = redactValue(fields ?? {}, secrets) as Record<string, unknown>;
      const line: Record<string, unknown> = {
        timestamp: typeof safe.timestamp === 'string' ? safe.timestamp : new Date(now()).toISOString(),
        level,
        ...safe,
      };
      line.level = level;
      if (message !== undefined) line.msg = redactValue(message, secrets);
      write(`${JSON.stringify(line)}\n`);
    };
  return { debug: method('debug'), info: method('info'), warn: method('warn'), error: method('error') };
}
