// Test helpers for @comfy-serverless/redis: `@comfy-serverless/redis/test`.
export type { JournalHarness, TestJournalOptions } from './journal-conformance';
export { testJournal } from './journal-conformance';
