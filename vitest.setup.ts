import fc from 'fast-check';

// Property tests are deterministic in CI: one fixed seed for every fc.assert that does not
// choose its own. FUZZ_SEED=random explores new cases; FUZZ_SEED=<n> replays a run.
if (process.env.FUZZ_SEED !== 'random') {
  fc.configureGlobal({ seed: Number(process.env.FUZZ_SEED ?? 20261126) });
}
