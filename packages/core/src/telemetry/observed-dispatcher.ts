import type { Dispatcher, DispatcherEvents } from '../dispatch/dispatcher';

/**
 * What telemetry needs of a dispatcher: its events, and where available its providers (for
 * GPU names), journal (for job metadata such as `userId`) and load (`metrics()`, read on
 * each scrape). A `Dispatcher` is one; so is `{ events, providers, journal }` while one is
 * being built.
 */
export type ObservedDispatcher = Pick<Dispatcher, 'events'> &
  Partial<Pick<Dispatcher, 'providers' | 'journal' | 'metrics'>>;

/** The dispatcher's event map, re-exported for listeners' parameter types. */
export type ObservedDispatcherEvents = DispatcherEvents;

/** The payload of one dispatcher event. */
export type DispatcherEventPayload<Name extends keyof DispatcherEvents> = Parameters<
  DispatcherEvents[Name]
>[0];

/**
 * Subscribes `handlers` to `dispatcher.events`; returns a function that unsubscribes them
 * all. A handler that throws is silenced: telemetry must never break the job it observes.
 */
export function subscribe(
  dispatcher: ObservedDispatcher,
  handlers: { [Name in keyof DispatcherEvents]?: (event: DispatcherEventPayload<Name>) => void },
): () => void {
  const events = dispatcher.events as unknown as {
    on(name: string, listener: (event: never) => void): unknown;
    off(name: string, listener: (event: never) => void): unknown;
  };
  const entries = (Object.entries(handlers) as Array<[string, (event: never) => void]>).map(
    ([name, handler]): [string, (event: never) => void] => [
      name,
      (event) => {
        try {
          handler(event);
        } catch {
          // A broken exporter or logger is the observer's problem, not the job's.
        }
      },
    ],
  );
  for (const [name, handler] of entries) events.on(name, handler);
  let active = true;
  return () => {
    if (!active) return;
    active = false;
    for (const [name, handler] of entries) events.off(name, handler);
  };
}

/** Checks that `dispatcher` has typed events, naming the option when it does not. */
export function isObservedDispatcher(dispatcher: unknown): dispatcher is ObservedDispatcher {
  return (
    dispatcher !== null &&
    typeof dispatcher === 'object' &&
    typeof (dispatcher as { events?: { on?: unknown } }).events?.on === 'function'
  );
}
