/** The progress of one prompt, aggregated over its nodes into one overall fraction. */
export interface ProgressTracker {
  /** Sets the number of nodes the prompt has (from the workflow or the queue entry). */
  setTotalNodes(total: number): void;
  /** Nodes ComfyUI took from its cache: they count as done. */
  cached(nodeIds: string[]): void;
  /** A node started; the one before it is done. */
  executing(nodeId: string): void;
  /** Step progress inside a node. */
  progress(nodeId: string | undefined, value: number, max: number): void;
  /** The per-node states newer ComfyUI builds send (`progress_state`). */
  progressState(nodes: Record<string, { state?: string; value?: number; max?: number }>): void;
  /** The overall fraction, 0..1, never lower than an earlier answer. */
  fraction(): number;
}

/**
 * Creates a tracker. With the node count known, the fraction is
 * `(nodes done + fraction of the running node) / nodes`; without it, the running node's
 * own fraction is the best there is. The answer never goes backwards.
 */
export function createProgressTracker(options: { totalNodes?: number } = {}): ProgressTracker {
  let totalNodes = options.totalNodes ?? 0;
  const done = new Set<string>();
  let current: string | undefined;
  let currentFraction = 0;
  let states: Record<string, { state?: string; value?: number; max?: number }> | undefined;
  let reported = 0;

  const executing = (nodeId: string) => {
    if (current === nodeId) return;
    if (current !== undefined) done.add(current);
    current = nodeId;
    currentFraction = 0;
  };

  const compute = (): number => {
    if (states !== undefined) {
      const entries = Object.values(states);
      const total = Math.max(totalNodes, entries.length);
      if (total === 0) return 0;
      let sum = 0;
      for (const node of entries) {
        if (node.state === 'finished') sum += 1;
        else if (node.state === 'running' && node.max && node.max > 0)
          sum += Math.min(1, Math.max(0, (node.value ?? 0) / node.max));
      }
      return sum / total;
    }
    if (totalNodes > 0) return (Math.min(done.size, totalNodes) + currentFraction) / totalNodes;
    return currentFraction;
  };

  return {
    setTotalNodes(total) {
      if (Number.isFinite(total) && total > 0) totalNodes = total;
    },
    cached(nodeIds) {
      for (const nodeId of nodeIds) done.add(nodeId);
    },
    executing,
    progress(nodeId, value, max) {
      if (nodeId !== undefined) executing(nodeId);
      currentFraction = max > 0 ? Math.min(1, Math.max(0, value / max)) : 0;
    },
    progressState(nodes) {
      states = nodes;
    },
    fraction() {
      const value = Math.min(1, Math.max(0, compute()));
      if (value > reported) reported = value;
      return reported;
    },
  };
}
