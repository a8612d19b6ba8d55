import { beforeAll, describe, expect, it } from 'vitest';
import { type ChaosReport, formatReport, runChaos } from './run-chaos';

// One run of 1,000 jobs (CHAOS_JOBS to change it) over the RunPod mock and four fake ComfyUI
// servers, each behind a seeded fault proxy, with a 30 s outage and a host killed mid-run.
// CHAOS_SEED replays a run.
describe('chaos run', () => {
  let report: ChaosReport;

  beforeAll(async () => {
    report = await runChaos({
      jobCount: Number(process.env.CHAOS_JOBS ?? 1_000),
      log: (line) => console.log(line),
    });
    console.log(formatReport(report));
  }, 175_000);

  it('ends every job: none is lost', () => {
    expect(report.lost).toEqual([]);
    const ended = Object.values(report.byStatus).reduce((sum, count) => sum + count, 0);
    expect(ended).toBe(report.jobCount);
  });

  it('ends failed and cancelled jobs with typed errors only', () => {
    expect(report.untyped).toEqual([]);
    expect(report.emptyResults).toEqual([]);
    // The plan makes about 3 % fail on a missing model and 2 % be cancelled: both must show.
    expect(report.byError.ComfyValidationError ?? 0).toBeGreaterThan(0);
    expect(report.byError.JobCancelledError ?? 0).toBeGreaterThan(0);
    expect(report.byStatus.completed ?? 0).toBeGreaterThan(report.jobCount * 0.8);
  });

  it('really injected the faults, the outage and the crash', () => {
    const totals: Record<string, number> = {};
    for (const counts of Object.values(report.faults))
      for (const [kind, count] of Object.entries(counts)) totals[kind] = (totals[kind] ?? 0) + count;
    for (const kind of ['server-error', 'rate-limit', 'reset-before', 'reset-after', 'slow', 'truncate'])
      expect(totals[kind] ?? 0, kind).toBeGreaterThan(0);
    expect(totals.outage ?? 0).toBeGreaterThan(0);
    expect(report.crash).toBeDefined();
    expect(report.executions.runpod).toBeGreaterThan(0);
    expect(report.executions.comfy).toBeGreaterThan(0);
  });

  // Two bugs still run jobs twice (docs/reliability.md, "What the suite found"); the first
  // fixes (6b60b5d, e1d0ef6) closed the plain cases, the suite then found these:
  // 1. a /run answer cut off mid-body after its 200 status arrived is not counted by
  //    request-json.ts mayHaveBeenReceived, so the dispatcher sends /run again;
  // 2. self-hosted.ts doSubmit, on a retry, does not search servers whose /queue or /history
  //    check failed, so a prompt that landed there is queued again on another server (or the
  //    attempt fails with a plain ApiCallError and the job falls back to RunPod).
  // Both resend inside one journalled attempt, or fall back after an attempt that ended on an
  // ambiguous error; each has a one-job reproduction marked it.fails
  // (runpod-provider.hostile.test.ts, self-hosted.hostile.test.ts). How many a run meets depends
  // on the seed (0 to ~10 in 1,000 jobs), so this test holds every other way of running twice
  // to zero; once both are fixed, make it `expect(report.doubleExecutions).toEqual([])`.
  it('runs no job twice, except through the two known lost-answer bugs', () => {
    // Allowed per platform: each journalled reference may have run twice (a resend within its
    // attempt), and an attempt that ended without a reference after an ambiguous error (the
    // request may have landed) may have run once before the job fell back elsewhere.
    const unexplained = report.doubleExecutions.filter((double) => {
      const allowed = { runpod: 0, comfy: 0 };
      let references = 0;
      for (const attempt of double.attempts) {
        const platform = attempt.startsWith('runpod:') ? 'runpod' : 'comfy';
        if (!attempt.includes('(no reference)')) {
          references += 1;
          allowed[platform] += 2;
        } else if (/ApiCallError|InvalidResponseError/.test(attempt)) allowed[platform] += 1;
      }
      return (
        references > 1 || double.runpodExecutions > allowed.runpod || double.comfyExecutions > allowed.comfy
      );
    });
    // A prompt id run again on the same server shows only as a surplus of runs over history
    // entries (comfyUnattributed): that, too, can only be bug 2 (one attempt, one prompt id).
    expect(unexplained).toEqual([]);
  });
});
