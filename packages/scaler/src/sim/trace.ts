import { InvalidArgumentError } from '@comfy-serverless/core';

/** How arrival times are written in a trace. */
export type TraceTimeFormat = 'auto' | 'datetime' | 'epoch-seconds' | 'epoch-milliseconds';

/** Where to find each field in a CSV trace. */
export interface TraceColumns {
  /** Column of arrival times. @default 'gmt_create' */
  time?: string;
  /** Column of execution times. @default 'exec_time_seconds' */
  execution?: string;
  /** Column of model ids; no model switches are simulated without it. */
  model?: string;
  /**
   * How the time column is written: `datetime` (`YYYY-MM-DD hh:mm:ss` or ISO 8601; read as UTC
   * unless it carries a zone), `epoch-seconds`, `epoch-milliseconds`, or `auto` (a plain
   * number is epoch ms above 1e11 and epoch seconds below; anything else a datetime).
   * @default 'auto'
   */
  timeFormat?: TraceTimeFormat;
  /** Unit of the execution column. @default 'seconds' */
  executionUnit?: 'seconds' | 'milliseconds';
}

/** A trace in columns: one entry per job, sorted by arrival. */
export interface Trace {
  /** Arrival times, epoch ms, ascending. */
  arrivalMs: Float64Array;
  /** Execution times in ms. */
  executionMs: Float64Array;
  /** Index into `models` per job, or -1 when the job names no model. */
  modelIndex: Int32Array;
  /** Distinct model ids, in order of first appearance. */
  models: string[];
  /** Number of jobs. */
  count: number;
}

/** Splits one CSV line, honouring double quotes. */
function splitCsvLine(line: string): string[] {
  if (!line.includes('"')) return line.split(',');
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let index = 0; index < line.length; index++) {
    const character = line[index];
    if (quoted) {
      if (character === '"') {
        if (line[index + 1] === '"') {
          field += '"';
          index++;
        } else quoted = false;
      } else field += character;
    } else if (character === '"') quoted = true;
    else if (character === ',') {
      fields.push(field);
      field = '';
    } else field += character;
  }
  fields.push(field);
  return fields;
}

/** Parses one arrival time; NaN when it cannot be read. */
export function parseTraceTime(value: string, format: TraceTimeFormat): number {
  const text = value.trim();
  if (format === 'auto') {
    if (/^\d+(\.\d+)?$/.test(text)) {
      const number = Number(text);
      return number > 1e11 ? number : number * 1000;
    }
    return parseTraceTime(text, 'datetime');
  }
  if (format === 'epoch-seconds') return Number(text) * 1000;
  if (format === 'epoch-milliseconds') return Number(text);
  const match = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?$/.exec(text);
  if (match) {
    const [, year, month, day, hour, minute, second, fraction] = match;
    return (
      Date.UTC(
        Number(year),
        Number(month) - 1,
        Number(day),
        Number(hour),
        Number(minute),
        Number(second ?? 0),
      ) + (fraction ? Math.round(Number(fraction) * 1000) : 0)
    );
  }
  return Date.parse(text);
}

/**
 * Reads a CSV trace (a header line, then one job per line) into columns sorted by arrival.
 * Rows whose time or execution cannot be read are skipped and counted.
 *
 * @example
 * const trace = parseTraceCsv(readFileSync('requests.csv', 'utf8'), { model: 'checkpoint_model_version_id' });
 */
export function parseTraceCsv(text: string, columns: TraceColumns = {}): Trace & { skippedRows: number } {
  const timeColumn = columns.time ?? 'gmt_create';
  const executionColumn = columns.execution ?? 'exec_time_seconds';
  const timeFormat = columns.timeFormat ?? 'auto';
  const executionScale = (columns.executionUnit ?? 'seconds') === 'seconds' ? 1000 : 1;
  const lines = text.split(/\r?\n/);
  const header = splitCsvLine(lines[0] ?? '').map((name) => name.trim());
  const find = (name: string, option: string): number => {
    const index = header.indexOf(name);
    if (index < 0)
      throw new InvalidArgumentError({
        argument: option,
        message: `The trace has no column "${name}" (${option}); its columns are: ${header.join(', ')}. Name the right column.`,
      });
    return index;
  };
  const timeIndex = find(timeColumn, 'columns.time');
  const executionIndex = find(executionColumn, 'columns.execution');
  const modelIndexColumn = columns.model === undefined ? -1 : find(columns.model, 'columns.model');

  const arrivals: number[] = [];
  const executions: number[] = [];
  const modelIds: number[] = [];
  const models: string[] = [];
  const modelLookup = new Map<string, number>();
  let skippedRows = 0;
  for (let lineIndex = 1; lineIndex < lines.length; lineIndex++) {
    const line = lines[lineIndex]!;
    if (line.length === 0) continue;
    const fields = splitCsvLine(line);
    const arrival = parseTraceTime(fields[timeIndex] ?? '', timeFormat);
    const execution = Number(fields[executionIndex]) * executionScale;
    if (!Number.isFinite(arrival) || !Number.isFinite(execution) || execution < 0) {
      skippedRows++;
      continue;
    }
    let model = -1;
    if (modelIndexColumn >= 0) {
      const id = (fields[modelIndexColumn] ?? '').trim();
      if (id.length > 0) {
        const known = modelLookup.get(id);
        if (known === undefined) {
          model = models.length;
          models.push(id);
          modelLookup.set(id, model);
        } else model = known;
      }
    }
    arrivals.push(arrival);
    executions.push(execution);
    modelIds.push(model);
  }
  return { ...buildTrace(arrivals, executions, modelIds, models), skippedRows };
}

/** Builds a trace from plain arrays (sorted here by arrival; ties keep their order). */
export function buildTrace(
  arrivalMs: ArrayLike<number>,
  executionMs: ArrayLike<number>,
  modelIndex?: ArrayLike<number>,
  models: string[] = [],
): Trace {
  const count = arrivalMs.length;
  if (executionMs.length !== count)
    throw new InvalidArgumentError({
      argument: 'executionMs',
      message: `executionMs has ${executionMs.length} entries but arrivalMs has ${count}; give one per job.`,
    });
  const order = new Uint32Array(count);
  for (let index = 0; index < count; index++) order[index] = index;
  let sorted = true;
  for (let index = 1; index < count; index++)
    if (arrivalMs[index]! < arrivalMs[index - 1]!) {
      sorted = false;
      break;
    }
  if (!sorted) order.sort((left, right) => arrivalMs[left]! - arrivalMs[right]! || left - right);
  const trace: Trace = {
    arrivalMs: new Float64Array(count),
    executionMs: new Float64Array(count),
    modelIndex: new Int32Array(count),
    models: [...models],
    count,
  };
  for (let index = 0; index < count; index++) {
    const source = order[index]!;
    trace.arrivalMs[index] = arrivalMs[source]!;
    trace.executionMs[index] = executionMs[source]!;
    trace.modelIndex[index] = modelIndex === undefined ? -1 : modelIndex[source]!;
  }
  return trace;
}

/**
 * A window of a trace and/or a time compression: `from`/`to` (epoch ms, `to` exclusive)
 * select jobs; `speedup` divides the gaps between arrivals (10 means ten times the load),
 * keeping execution times.
 */
export function sliceTrace(trace: Trace, options: { from?: number; to?: number; speedup?: number }): Trace {
  const speedup = options.speedup ?? 1;
  if (!(speedup > 0))
    throw new InvalidArgumentError({ argument: 'speedup', message: `speedup must be > 0, got ${speedup}.` });
  const from = options.from ?? Number.NEGATIVE_INFINITY;
  const to = options.to ?? Number.POSITIVE_INFINITY;
  let start = 0;
  while (start < trace.count && trace.arrivalMs[start]! < from) start++;
  let end = start;
  while (end < trace.count && trace.arrivalMs[end]! < to) end++;
  const count = end - start;
  const origin = count > 0 ? trace.arrivalMs[start]! : 0;
  const arrivalMs = new Float64Array(count);
  for (let index = 0; index < count; index++)
    arrivalMs[index] = origin + (trace.arrivalMs[start + index]! - origin) / speedup;
  return {
    arrivalMs,
    executionMs: trace.executionMs.slice(start, end),
    modelIndex: trace.modelIndex.slice(start, end),
    models: [...trace.models],
    count,
  };
}
