/** A one-line progress bar on a stream that understands carriage returns. */
export function createProgressBar(
  write: (text: string) => void,
  width = 30,
): (label: string, fraction: number) => void {
  let lastDrawn = '';
  return (label, fraction) => {
    const clamped = Math.min(1, Math.max(0, fraction));
    const filled = Math.round(clamped * width);
    const line = `\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.round(clamped * 100)).padStart(3)}% ${label.slice(0, 40).padEnd(40)}`;
    if (line === lastDrawn) return;
    lastDrawn = line;
    write(line);
  };
}
