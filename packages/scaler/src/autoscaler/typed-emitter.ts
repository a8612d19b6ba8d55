/** A minimal typed event emitter (the scaler package keeps to core as its only dependency). */
export class TypedEmitter<Events extends Record<string, unknown>> {
  private readonly listeners = new Map<keyof Events, Set<(payload: never) => void>>();

  /** Adds a listener; returns a function that removes it. */
  on<Name extends keyof Events>(name: Name, listener: (payload: Events[Name]) => void): () => void {
    let set = this.listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(listener as (payload: never) => void);
    return () => this.off(name, listener);
  }

  /** Removes a listener. */
  off<Name extends keyof Events>(name: Name, listener: (payload: Events[Name]) => void): void {
    this.listeners.get(name)?.delete(listener as (payload: never) => void);
  }

  protected emit<Name extends keyof Events>(name: Name, payload: Events[Name]): void {
    const set = this.listeners.get(name);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as (value: Events[Name]) => void)(payload);
      } catch {
        // A listener's failure must not stop the scaling loop.
      }
    }
  }
}
