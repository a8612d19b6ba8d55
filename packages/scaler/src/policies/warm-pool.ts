/**
 * How many idle workers are worth keeping ready, from the arrival rate, the time it takes
 * to bring a new worker up, and the price of a violation.
 *
 * With `k` idle workers and arrivals at `ratePerSecond`, a job finds none idle when `k` or
 * more jobs arrived within the last `leadMs` (the time to replace a taken worker). The
 * k-th worker therefore prevents `rate * P(N = k - 1)` such jobs per second, N being
 * Poisson with mean `rate * lead`. It is kept when that is at least `valuePerSecond`, the
 * jobs a worker-second must save to be worth it. Returns the largest such `k`.
 */
export function worthwhileIdleWorkers(ratePerSecond: number, leadMs: number, valuePerSecond: number): number {
  if (!(ratePerSecond > 0) || !(valuePerSecond > 0)) return 0;
  const mean = (ratePerSecond * leadMs) / 1000;
  let probability = Math.exp(-mean);
  const limit = Math.ceil(mean + 10 * Math.sqrt(mean) + 10);
  let best = 0;
  for (let count = 0; count <= limit; count++) {
    if (count > 0) probability *= mean / count;
    if (ratePerSecond * probability >= valuePerSecond) best = count + 1;
    else if (count > mean) break;
  }
  return best;
}
