import type { JobOutput, ProviderJobEvent, ProviderJobRequest, RemoteJobRef } from '../spec/job';
import type {
  GpuSpec,
  ImageDescriptor,
  ProviderCallOptions,
  ProviderHealth,
  ProviderLimits,
  ProviderPricing,
  ProviderV1,
} from '../spec/provider-v1';

/**
 * How a mocked method answers: a value (an `Error` is thrown), a function of the call's
 * arguments, or a list of either, one per call (the last one repeats).
 */
export type MockBehaviour<Result, Args extends unknown[]> =
  | Result
  | Error
  | ((...args: Args) => Result | Promise<Result>)
  | Array<Result | Error | ((...args: Args) => Result | Promise<Result>)>;

/** Events, or a stream of them, for `doWatch`. */
export type MockWatchResult = ProviderJobEvent[] | AsyncIterable<ProviderJobEvent>;

/** Options of `createMockProvider`. */
export interface MockProviderOptions {
  id?: string;
  platform?: string;
  region?: string;
  gpu?: GpuSpec;
  pricing?: ProviderPricing;
  image?: ImageDescriptor;
  limits?: ProviderLimits;
  coldStartMs?: number;
  expectedExecutionMs?: number;
  specificationVersion?: string;
  doSubmit?: MockBehaviour<RemoteJobRef, [ProviderJobRequest, ProviderCallOptions | undefined]>;
  doWatch?: MockBehaviour<MockWatchResult, [RemoteJobRef, ProviderCallOptions | undefined]>;
  doCancel?: MockBehaviour<void, [RemoteJobRef, ProviderCallOptions | undefined]>;
  doHealth?: MockBehaviour<ProviderHealth, [ProviderCallOptions | undefined]>;
}

/** A provider whose every method is scripted, and which records each call. */
export interface MockProvider extends ProviderV1 {
  readonly calls: {
    doSubmit: ProviderJobRequest[];
    doWatch: RemoteJobRef[];
    doCancel: RemoteJobRef[];
    doHealth: number;
  };
}

/** A 1x1 PNG, the placeholder output of test providers. */
export const PLACEHOLDER_PNG: Uint8Array = Uint8Array.from(
  Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
    'base64',
  ),
);

/** A placeholder image output for node `nodeId`. */
export function placeholderOutput(nodeId = '9', filename = 'ComfyUI_00001_.png'): JobOutput {
  return { nodeId, kind: 'image', filename, mime: 'image/png', data: PLACEHOLDER_PNG };
}

function pick<Result, Args extends unknown[]>(
  behaviour: MockBehaviour<Result, Args>,
  callIndex: number,
): Result | Error | ((...args: Args) => Result | Promise<Result>) {
  if (Array.isArray(behaviour) && !isEventList(behaviour)) {
    const list = behaviour as Array<Result | Error | ((...args: Args) => Result | Promise<Result>)>;
    return list[Math.min(callIndex, list.length - 1)] as Result;
  }
  return behaviour as Result;
}

// A list of watch events is one answer, not one answer per call.
function isEventList(value: unknown[]): boolean {
  const first = value[0];
  return (
    first !== null &&
    typeof first === 'object' &&
    !(first instanceof Error) &&
    !Array.isArray(first) &&
    typeof (first as { type?: unknown }).type === 'string'
  );
}

async function answer<Result, Args extends unknown[]>(
  behaviour: MockBehaviour<Result, Args>,
  callIndex: number,
  args: Args,
): Promise<Result> {
  const chosen = pick(behaviour, callIndex);
  if (chosen instanceof Error) throw chosen;
  if (typeof chosen === 'function') return (chosen as (...args: Args) => Result | Promise<Result>)(...args);
  return chosen;
}

/**
 * A provider for tests: each method answers as scripted and every call is recorded.
 * By default a job completes at once with one placeholder PNG.
 *
 * @example
 * const provider = createMockProvider({
 *   doSubmit: [new ApiCallError({ message: 'busy', url: 'x', statusCode: 503 }), { remoteId: 'r1' }],
 * });
 */
export function createMockProvider(options: MockProviderOptions = {}): MockProvider {
  const calls: MockProvider['calls'] = { doSubmit: [], doWatch: [], doCancel: [], doHealth: 0 };
  let submitted = 0;
  const submitBehaviour: MockBehaviour<RemoteJobRef, [ProviderJobRequest, ProviderCallOptions | undefined]> =
    options.doSubmit ?? (() => ({ remoteId: `mock-${++submitted}` }));
  const watchBehaviour: MockBehaviour<MockWatchResult, [RemoteJobRef, ProviderCallOptions | undefined]> =
    options.doWatch ?? (() => [{ type: 'started' }, { type: 'completed', outputs: [placeholderOutput()] }]);
  const cancelBehaviour: MockBehaviour<void, [RemoteJobRef, ProviderCallOptions | undefined]> =
    options.doCancel ?? (() => undefined);
  const healthBehaviour: MockBehaviour<ProviderHealth, [ProviderCallOptions | undefined]> =
    options.doHealth ?? (() => ({ status: 'healthy', checkedAt: Date.now() }));

  return {
    specificationVersion: (options.specificationVersion ?? 'v1') as 'v1',
    id: options.id ?? 'mock',
    platform: options.platform ?? 'mock',
    ...(options.region === undefined ? {} : { region: options.region }),
    gpu: options.gpu ?? { type: 'L4-24GB', vramGb: 24 },
    pricing: options.pricing ?? { usdPerSecond: 0.00019 },
    ...(options.image === undefined ? {} : { image: options.image }),
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.coldStartMs === undefined ? {} : { coldStartMs: options.coldStartMs }),
    ...(options.expectedExecutionMs === undefined
      ? {}
      : { expectedExecutionMs: options.expectedExecutionMs }),
    calls,
    async doSubmit(request, callOptions) {
      calls.doSubmit.push(request);
      return answer(submitBehaviour, calls.doSubmit.length - 1, [request, callOptions]);
    },
    doWatch(ref, callOptions) {
      calls.doWatch.push(ref);
      const index = calls.doWatch.length - 1;
      return {
        async *[Symbol.asyncIterator]() {
          const events = await answer(watchBehaviour, index, [ref, callOptions]);
          for await (const event of events) {
            if (callOptions?.signal?.aborted) return;
            yield event;
          }
        },
      };
    },
    async doCancel(ref, callOptions) {
      calls.doCancel.push(ref);
      return answer(cancelBehaviour, calls.doCancel.length - 1, [ref, callOptions]);
    },
    async doHealth(callOptions) {
      calls.doHealth += 1;
      return answer(healthBehaviour, calls.doHealth - 1, [callOptions]);
    },
  };
}
