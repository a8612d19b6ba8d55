import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../spec/errors';
import { createMemoryJournal } from './memory-journal';

const base = { requestHash: 'h', createdAt: 1, request: { workflow: {}, images: [] } };

describe('createMemoryJournal', () => {
  it('creates once per job id and returns the stored record to later callers', async () => {
    const journal = createMemoryJournal();
    const first = await journal.create({ jobId: 'a', ...base });
    const second = await journal.create({ jobId: 'a', ...base, requestHash: 'other' });
    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    expect(second.record.requestHash).toBe('h');
    expect(second.record.status).toBe('queued');
  });

  it('moves status only forward and never out of a terminal state', async () => {
    const journal = createMemoryJournal();
    await journal.create({ jobId: 'a', ...base });
    await journal.update('a', { status: 'running' });
    await expect(journal.update('a', { status: 'queued' })).rejects.toSatisfy(
      InvalidArgumentError.isInstance,
    );
    await journal.update('a', { status: 'completed' });
    await expect(journal.update('a', { status: 'failed' })).rejects.toSatisfy(
      InvalidArgumentError.isInstance,
    );
    expect((await journal.get('a'))?.version).toBe(3);
  });

  it('lists only non-terminal jobs and evicts the oldest finished ones beyond the bound', async () => {
    const journal = createMemoryJournal({ maxFinishedJobs: 2 });
    for (const id of ['a', 'b', 'c', 'd']) await journal.create({ jobId: id, ...base });
    for (const id of ['a', 'b', 'c']) await journal.update(id, { status: 'completed' });
    expect((await journal.listNonTerminal()).map((record) => record.jobId)).toEqual(['d']);
    expect(await journal.get('a')).toBeUndefined();
    expect((await journal.get('b'))?.status).toBe('completed');
  });

  it('lets one owner claim a job until its claim expires', async () => {
    let now = 0;
    const journal = createMemoryJournal({ now: () => now });
    expect(await journal.claim!('a', 'one', 1_000)).toBe(true);
    expect(await journal.claim!('a', 'two', 1_000)).toBe(false);
    now = 1_001;
    expect(await journal.claim!('a', 'two', 1_000)).toBe(true);
  });
});
