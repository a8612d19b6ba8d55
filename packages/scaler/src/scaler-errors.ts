import { ComfyServerlessError } from '@comfy-serverless/core';

const infeasibleMarker = 'comfy-serverless.error.InfeasibleAllocationError';
const infeasibleSymbol = Symbol.for(infeasibleMarker);

/** Which allocation constraint made a capacity need impossible to meet. */
export type AllocationConstraint =
  | 'maxBudgetPerHour'
  | 'p99LatencyTargetMs'
  | 'minAvailability'
  | 'maxInstances'
  | 'maxWorkers';

/** The allocation optimiser's constraints cannot all be met; `constraint` says which one binds. */
export class InfeasibleAllocationError extends ComfyServerlessError {
  protected readonly [infeasibleSymbol] = true;
  readonly constraint: AllocationConstraint;
  constructor(options: { constraint: AllocationConstraint; message: string }) {
    super({ message: options.message, name: 'InfeasibleAllocationError', isRetryable: false });
    this.constraint = options.constraint;
  }
  static override isInstance(error: unknown): error is InfeasibleAllocationError {
    return (
      error != null &&
      typeof error === 'object' &&
      (error as Record<symbol, unknown>)[infeasibleSymbol] === true
    );
  }
  protected override details(): Record<string, unknown> {
    return { constraint: this.constraint };
  }
}
