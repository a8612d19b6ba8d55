import { EventEmitter } from 'eventemitter3';
import type { DispatcherEvents, DispatcherMetrics } from '../../dispatch/dispatcher';
import { createMemoryJournal } from '../../dispatch/memory-journal';
import type { JobEvent, JobResult } from '../../spec/job';
import type { JobJournalV1 } from '../../spec/job-journal-v1';
import type { ProviderV1 } from '../../spec/provider-v1';
import { createMockProvider } from '../../test/mock-provider';

/** A dispatcher face whose events a test emits by hand, with exact times. */
export interface FakeDispatcher {
  events: EventEmitter<DispatcherEvents>;
  providers: ProviderV1[];
  journal: JobJournalV1;
  load: DispatcherMetrics;
  metrics(): DispatcherMetrics;
  emit(event: JobEvent): void;
}

export function createFakeDispatcher(providerIds: string[] = ['runpod:a', 'modal:b']): FakeDispatcher {
  const events = new EventEmitter<DispatcherEvents>();
  const fake: FakeDispatcher = {
    events,
    providers: providerIds.map((id) => createMockProvider({ id, gpu: { type: 'L4-24GB', vramGb: 24 } })),
    journal: createMemoryJournal(),
    load: {
      demand: {
        bucketMs: 10_000,
        arrivals: [],
        queueDepth: 0,
        inFlight: 0,
        recentWaitsMs: [],
        recentExecutionMs: [],
      },
      providers: {},
    },
    metrics: () => fake.load,
    emit(event) {
      (events.emit as (name: string, payload: unknown) => boolean)(`job:${event.type}`, event);
    },
  };
  return fake;
}

/** The result of a completed job, with the given timing. */
export function resultOf(
  jobId: string,
  providerId: string,
  timing: { queuedMs: number; coldStartMs?: number; executionMs: number; totalMs: number },
  usd = 0.01,
): JobResult {
  return {
    jobId,
    status: 'completed',
    outputs: [
      {
        nodeId: '9',
        kind: 'image',
        filename: 'out.png',
        mime: 'image/png',
        url: 'https://bucket.s3.amazonaws.com/out.png?X-Amz-Signature=deadbeefcafe',
      },
    ],
    timing,
    cost: { usd, gpuSeconds: Math.ceil((timing.executionMs + (timing.coldStartMs ?? 0)) / 1000), providerId },
    providerId,
    attempts: 1,
  };
}

/**
 * Emits one job's whole life: queued at `at`, routed after `routeMs`, submitted after
 * `submitMs` more, started after `startMs` more (with `coldStartMs`), completed after
 * `executionMs` more. Returns the completion time.
 */
export function runJob(
  fake: FakeDispatcher,
  jobId: string,
  providerId: string,
  at: number,
  phases: {
    routeMs?: number;
    submitMs?: number;
    startMs?: number;
    coldStartMs?: number;
    executionMs: number;
    usd?: number;
  },
): number {
  const routed = at + (phases.routeMs ?? 0);
  const submitted = routed + (phases.submitMs ?? 0);
  const started = submitted + (phases.startMs ?? phases.coldStartMs ?? 0);
  const completed = started + phases.executionMs;
  fake.emit({ type: 'queued', jobId, at });
  fake.emit({ type: 'routed', jobId, at: routed, providerId, candidates: [providerId] });
  fake.emit({ type: 'submitted', jobId, at: submitted, providerId, remoteId: `remote-${jobId}`, attempt: 1 });
  fake.emit({
    type: 'started',
    jobId,
    at: started,
    providerId,
    ...(phases.coldStartMs === undefined ? {} : { coldStartMs: phases.coldStartMs }),
  });
  fake.emit({
    type: 'completed',
    jobId,
    at: completed,
    result: resultOf(
      jobId,
      providerId,
      {
        queuedMs: started - at,
        ...(phases.coldStartMs === undefined ? {} : { coldStartMs: phases.coldStartMs }),
        executionMs: phases.executionMs,
        totalMs: completed - at,
      },
      phases.usd,
    ),
  });
  return completed;
}
