/** Where the bar is drawn: a terminal (redrawn in place) or a log (a line now and then). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** A text progress bar for byte counts. */
export interface ProgressBar {
  /** Sets the bytes done so far (and the label: the file being fetched). */
  update(bytesDone: number, label?: string): void;
  /** Raises the total when it becomes known. */
  setTotal(totalBytes: number): void;
  /** Draws the final state and ends the line. */
  finish(): void;
}

/** `1.5 GB`, `340 MB`, `12 kB`: decimal units, as download speeds are quoted. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/**
 * Creates a progress bar: `[##########----------]  50%  1.2 GB / 2.4 GB  410 MB/s  checkpoints/sdxl.safetensors`.
 * On a terminal it redraws one line at most every `intervalMs`; elsewhere it writes a line at
 * each tenth of the way, so logs stay short.
 */
export function createProgressBar(options: {
  stream: ProgressStream;
  totalBytes: number;
  now?: () => number;
  intervalMs?: number;
}): ProgressBar {
  const { stream } = options;
  const now = options.now ?? (() => Date.now());
  const intervalMs = options.intervalMs ?? 100;
  const startedAt = now();
  let totalBytes = options.totalBytes;
  let bytesDone = 0;
  let label = '';
  let lastDrawAt = Number.NEGATIVE_INFINITY;
  let lastTenth = -1;

  const render = () => {
    const fraction = totalBytes > 0 ? Math.min(1, bytesDone / totalBytes) : 1;
    const width = 24;
    const filled = Math.round(fraction * width);
    const seconds = Math.max(0.001, (now() - startedAt) / 1000);
    const rate = `${formatBytes(bytesDone / seconds)}/s`;
    const percent = `${Math.floor(fraction * 100)}`.padStart(3);
    const line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${percent}%  ${formatBytes(bytesDone)} / ${formatBytes(totalBytes)}  ${rate}  ${label}`;
    const columns = stream.columns ?? 120;
    return line.length > columns ? line.slice(0, columns - 1) : line;
  };

  return {
    update(done, newLabel) {
      bytesDone = done;
      if (newLabel !== undefined) label = newLabel;
      if (stream.isTTY) {
        const at = now();
        if (at - lastDrawAt < intervalMs) return;
        lastDrawAt = at;
        stream.write(`\r${render()}\u001b[K`);
        return;
      }
      const tenth = totalBytes > 0 ? Math.floor((bytesDone / totalBytes) * 10) : 10;
      if (tenth > lastTenth) {
        lastTenth = tenth;
        stream.write(`${render()}\n`);
      }
    },
    setTotal(total) {
      totalBytes = total;
    },
    finish() {
      stream.write(stream.isTTY ? `\r${render()}\u001b[K\n` : lastTenth < 10 ? `${render()}\n` : '');
    },
  };
}
