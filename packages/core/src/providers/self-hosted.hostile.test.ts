import { afterEach, describe, expect, it } from 'vitest';
import { createDispatcher } from '../dispatch/dispatcher';
import type { FetchFunction } from '../http/request-json';
import type { ProviderV1 } from '../spec/provider-v1';
import { type FakeComfyServer, sampleWorkflow, startFakeComfyServer } from '../test/fake-comfy';
import { createMockProvider } from '../test/mock-provider';
import { createSelfHosted } from './self-hosted';

// A self-hosted pool whose /prompt answer is lost after ComfyUI took the prompt: the job
// must still run once. Found by the chaos suite (chaos/), reduced to one job here.

let servers: FakeComfyServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((server) => server.close()));
  servers = [];
});

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Lets the first POST /prompt reach its server, waits until that server has run it, then
 * drops the answer as a reset would; the next request (the provider's check of /queue and
 * /history) fails too, as it would while the link is down.
 */
function loseFirstPromptAnswer(): FetchFunction {
  let state: 'before' | 'dropped' | 'after' = 'before';
  return async (input, init) => {
    const url = new URL(String(input));
    if (state === 'dropped') {
      state = 'after';
      throw new TypeError('fetch failed', {
        cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }),
      });
    }
    const response = await fetch(input, init);
    if (state === 'before' && url.pathname === '/prompt' && (init?.method ?? 'GET') === 'POST') {
      state = 'dropped';
      await response.body?.cancel();
      await until(
        () => servers.reduce((sum, server) => sum + server.stats.completed, 0) >= 1,
        'the prompt to run',
      );
      throw new TypeError('fetch failed', {
        cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      });
    }
    return response;
  };
}

/**
 * Like loseFirstPromptAnswer, but the server that took the prompt then stays unreachable for
 * its next `failures` requests (a link that flaps), so the retry cannot check it at all.
 */
function loseAnswerThenServerBriefly(failures: number): FetchFunction {
  let dropped: string | undefined;
  let left = failures;
  return async (input, init) => {
    const url = new URL(String(input));
    if (dropped === url.origin && left > 0) {
      left -= 1;
      throw new TypeError('fetch failed', {
        cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }),
      });
    }
    const response = await fetch(input, init);
    if (dropped === undefined && url.pathname === '/prompt' && (init?.method ?? 'GET') === 'POST') {
      dropped = url.origin;
      await response.body?.cancel();
      await until(
        () => servers.reduce((sum, server) => sum + server.stats.completed, 0) >= 1,
        'the prompt to run',
      );
      throw new TypeError('fetch failed', {
        cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      });
    }
    return response;
  };
}

/** Like loseAnswerThenServerBriefly, but then no server at all answers for a while (an outage). */
function loseAnswerThenAllServersBriefly(failures: number): FetchFunction {
  let dropped = false;
  let left = failures;
  return async (input, init) => {
    const url = new URL(String(input));
    if (dropped && left > 0) {
      left -= 1;
      throw new TypeError('fetch failed', {
        cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }),
      });
    }
    const response = await fetch(input, init);
    if (!dropped && url.pathname === '/prompt' && (init?.method ?? 'GET') === 'POST') {
      dropped = true;
      await response.body?.cancel();
      await until(
        () => servers.reduce((sum, server) => sum + server.stats.completed, 0) >= 1,
        'the prompt to run',
      );
      throw new TypeError('fetch failed', {
        cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      });
    }
    return response;
  };
}

async function runOnce(fetchFunction: FetchFunction, fallback?: ProviderV1) {
  servers = [await startFakeComfyServer(), await startFakeComfyServer()];
  const provider = createSelfHosted({
    servers: servers.map((server) => server.url),
    gpu: 'L4-24GB',
    fetch: fetchFunction,
    pricing: { usdPerSecond: 0.0001 },
  });
  const dispatcher = createDispatcher({
    providers: fallback ? [provider, fallback] : [provider],
    retry: { minDelayMs: 1, maxDelayMs: 5, random: () => 0.5 },
  });
  const result = await dispatcher.runWorkflow(sampleWorkflow(), { jobId: 'render-1' });
  dispatcher.close();
  return {
    status: result.status,
    executions: servers.reduce((sum, server) => sum + server.stats.executions, 0),
  };
}

describe('self-hosted submission when the answer to /prompt is lost', () => {
  it('runs the job once when nothing is lost (the setup the case below relies on)', async () => {
    expect(await runOnce((input, init) => fetch(input, init))).toEqual({
      status: 'completed',
      executions: 1,
    });
  });

  // Found by the chaos suite: a retry of the same attempt used to look for the earlier
  // submission only in /queue; a prompt that already ran is in /history, and is now found there.
  it('runs the job once when the answer to /prompt is lost after ComfyUI ran it', async () => {
    expect(await runOnce(loseFirstPromptAnswer())).toEqual({ status: 'completed', executions: 1 });
  });

  // Found again by the chaos suite (fixed): the retry used to search only the servers whose
  // /queue answered and took a failed /history check as "not there", so the prompt went to
  // another server and ran twice. Now a prompt whose answer was lost is remembered with its
  // server; while that server cannot be checked, the submission ends as SubmissionUnknownError
  // and the dispatcher asks doLookup (retried with backoff) until the server answers.
  it('runs the job once when the server that took the prompt is briefly unreachable after', async () => {
    expect(await runOnce(loseAnswerThenServerBriefly(3))).toEqual({ status: 'completed', executions: 1 });
  });

  // Found by the chaos suite (seed 2076481695): when no server at all answered the retry's
  // /queue check (an outage), the attempt failed as a plain retryable error and the job fell
  // back to another provider while the prompt had already run. Now it is SubmissionUnknown
  // and doLookup waits for the servers.
  it('never falls back elsewhere when no server answers after the answer to /prompt was lost', async () => {
    const elsewhere = createMockProvider({ id: 'elsewhere', pricing: { usdPerSecond: 0.01 } });
    // 7 failed requests: the check right after the lost answer, then both servers' /queue on
    // each of the three submission retries; the lookups after that reach the servers.
    expect(await runOnce(loseAnswerThenAllServersBriefly(7), elsewhere)).toEqual({
      status: 'completed',
      executions: 1,
    });
    expect(elsewhere.calls.doSubmit).toHaveLength(0);
  });
});
