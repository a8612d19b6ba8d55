import {
  InvalidArgumentError,
  type JobJournalV1,
  type JobRecord,
  type NewJobRecord,
} from '@comfy-serverless/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

/** What the journal conformance suite needs for one test. */
export interface JournalHarness {
  /** The journal under test. */
  journal: JobJournalV1;
  /**
   * A second handle on the same store, as another process would hold it (its own client).
   * A single-process journal returns the same object.
   */
  peer: JobJournalV1;
  /** Lets `ms` of the journal's time pass (advance an injected clock, or wait for real). */
  elapse(ms: number): Promise<void>;
  /** Releases what the harness opened and deletes what the test wrote. */
  close(): Promise<void>;
}

/** Options of `testJournal`. */
export interface TestJournalOptions {
  /** A claim's lifetime in the claim cases, ms; keep it short when `elapse` waits for real. @default 50 */
  claimTtlMs?: number;
}

function newRecord(jobId: string, overrides: Partial<NewJobRecord> = {}): NewJobRecord {
  return {
    jobId,
    requestHash: `hash-${jobId}`,
    createdAt: 1_700_000_000_000,
    request: { workflow: { '1': { class_type: 'SaveImage', inputs: { images: ['2', 0] } } }, images: [] },
    ...overrides,
  };
}

const isInvalidArgument = (error: unknown) => InvalidArgumentError.isInstance(error);

/**
 * The conformance suite every `JobJournalV1` runs: idempotent create (also from two
 * processes at once), forward-only status that never leaves a terminal state, lost-update
 * safety, `listNonTerminal`, and claims that expire.
 *
 * @example
 * testJournal('memory', async () => {
 *   let now = 0;
 *   const journal = createMemoryJournal({ now: () => now });
 *   return { journal, peer: journal, elapse: async (ms) => { now += ms; }, close: async () => {} };
 * });
 */
export function testJournal(
  name: string,
  createHarness: () => Promise<JournalHarness>,
  options: TestJournalOptions = {},
): void {
  const claimTtlMs = options.claimTtlMs ?? 50;

  describe(`journal conformance: ${name}`, () => {
    let harness: JournalHarness;
    beforeEach(async () => {
      harness = await createHarness();
    });
    afterEach(async () => {
      await harness.close();
    });

    it('creates once per job id and returns the stored record to later callers', async () => {
      const { journal } = harness;
      const first = await journal.create(newRecord('a'));
      expect(first.created).toBe(true);
      expect(first.record).toMatchObject({ jobId: 'a', status: 'queued', version: 1, attempts: [] });
      expect(first.record.updatedAt).toBe(first.record.createdAt);
      const second = await journal.create(newRecord('a', { requestHash: 'other' }));
      expect(second.created).toBe(false);
      expect(second.record.requestHash).toBe('hash-a');
      expect(second.record.status).toBe('queued');
    });

    it('gives one job when two processes create the same id at once', async () => {
      const { journal, peer } = harness;
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, index) =>
          (index % 2 === 0 ? journal : peer).create(newRecord('same', { requestHash: `hash-${index}` })),
        ),
      );
      const created = results.filter((result) => result.created);
      expect(created).toHaveLength(1);
      const winner = created[0]!.record.requestHash;
      for (const result of results) expect(result.record.requestHash).toBe(winner);
    });

    it('does not mutate the caller record and keeps byte arrays', async () => {
      const { journal, peer } = harness;
      const bytes = new Uint8Array([0, 1, 2, 250, 255]);
      const input = newRecord('bytes', {
        request: { workflow: {}, images: [{ name: 'in.png', data: bytes }], metadata: { user: 'u1' } },
      });
      const copy = structuredClone(input);
      await journal.create(input);
      expect(input).toEqual(copy);
      const stored = await peer.get('bytes');
      const data = stored?.request.images[0]?.data;
      expect(data).toBeInstanceOf(Uint8Array);
      expect([...(data as Uint8Array)]).toEqual([0, 1, 2, 250, 255]);
      expect(stored?.request.metadata).toEqual({ user: 'u1' });
    });

    it('applies a patch, bumps the version and returns what get returns', async () => {
      const { journal, peer } = harness;
      await journal.create(newRecord('a'));
      const updated = await journal.update('a', {
        status: 'running',
        startedAt: 5,
        providerId: 'p',
        attempts: [{ providerId: 'p', submittedAt: 4, remote: { remoteId: 'r-1', data: { server: 'a' } } }],
      });
      expect(updated).toMatchObject({ status: 'running', version: 2, startedAt: 5, providerId: 'p' });
      const read = await peer.get('a');
      expect(read).toEqual(updated);
      expect(await journal.get('missing')).toBeUndefined();
    });

    it('moves status only forward and never out of a terminal state', async () => {
      const { journal } = harness;
      await journal.create(newRecord('a'));
      await journal.update('a', { status: 'running' });
      await expect(journal.update('a', { status: 'queued' })).rejects.toSatisfy(isInvalidArgument);
      await journal.update('a', { status: 'completed', finishedAt: 9 });
      await expect(journal.update('a', { status: 'failed' })).rejects.toSatisfy(isInvalidArgument);
      await expect(journal.update('a', { status: 'running' })).rejects.toSatisfy(isInvalidArgument);
      const record = await journal.get('a');
      expect(record?.status).toBe('completed');
      expect(record?.version).toBe(3);
      // Straight from queued to a terminal state is forward too.
      await journal.create(newRecord('b'));
      expect((await journal.update('b', { status: 'cancelled' })).status).toBe('cancelled');
    });

    it('refuses to update a job it does not hold', async () => {
      await expect(harness.journal.update('nobody', { status: 'running' })).rejects.toSatisfy(
        isInvalidArgument,
      );
    });

    it('loses no update when two processes patch different fields at once', async () => {
      const { journal, peer } = harness;
      await journal.create(newRecord('a'));
      await Promise.all([
        journal.update('a', { providerId: 'p' }),
        peer.update('a', { startedAt: 7 }),
        journal.update('a', { owner: 'o' }),
        peer.update('a', { status: 'running' }),
      ]);
      const record = (await journal.get('a')) as JobRecord;
      expect(record).toMatchObject({ providerId: 'p', startedAt: 7, owner: 'o', status: 'running' });
      expect(record.version).toBe(5);
    });

    it('lets exactly one of two racing terminal updates win', async () => {
      const { journal, peer } = harness;
      await journal.create(newRecord('a'));
      const outcomes = await Promise.allSettled([
        journal.update('a', { status: 'completed' }),
        peer.update('a', { status: 'failed' }),
      ]);
      const fulfilled = outcomes.filter((outcome) => outcome.status === 'fulfilled');
      const rejected = outcomes.filter((outcome) => outcome.status === 'rejected');
      expect(fulfilled).toHaveLength(1);
      expect(rejected).toHaveLength(1);
      expect(isInvalidArgument((rejected[0] as PromiseRejectedResult).reason)).toBe(true);
      const winner = (fulfilled[0] as PromiseFulfilledResult<JobRecord>).value.status;
      expect((await peer.get('a'))?.status).toBe(winner);
    });

    it('lists every job not yet finished, and only those', async () => {
      const { journal, peer } = harness;
      for (const id of ['a', 'b', 'c', 'd']) await journal.create(newRecord(id));
      await journal.update('a', { status: 'completed' });
      await journal.update('b', { status: 'running' });
      await journal.update('c', { status: 'failed' });
      const listed = await peer.listNonTerminal();
      expect(listed.map((record) => record.jobId).sort()).toEqual(['b', 'd']);
      expect(listed.find((record) => record.jobId === 'b')?.status).toBe('running');
    });

    it('lets one owner claim a job until the claim expires, and the owner renew it', async () => {
      const { journal, peer } = harness;
      if (journal.claim === undefined || peer.claim === undefined) return;
      await journal.create(newRecord('a'));
      expect(await journal.claim('a', 'one', claimTtlMs)).toBe(true);
      expect(await peer.claim('a', 'two', claimTtlMs)).toBe(false);
      await harness.elapse(claimTtlMs / 2);
      expect(await journal.claim('a', 'one', claimTtlMs)).toBe(true);
      await harness.elapse((claimTtlMs * 3) / 4);
      // Renewed half-way, so still held three quarters of a ttl later.
      expect(await peer.claim('a', 'two', claimTtlMs)).toBe(false);
      await harness.elapse(claimTtlMs * 2);
      expect(await peer.claim('a', 'two', claimTtlMs)).toBe(true);
      expect(await journal.claim('a', 'one', claimTtlMs)).toBe(false);
    });

    it('gives a free job to exactly one of many processes claiming it at once', async () => {
      const { journal, peer } = harness;
      if (journal.claim === undefined || peer.claim === undefined) return;
      await journal.create(newRecord('a'));
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, index) =>
          (index % 2 === 0 ? journal : peer).claim!('a', `owner-${index}`, 10_000),
        ),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
    });
  });
}
