// Test doubles for @comfy-serverless/ecs: `@comfy-serverless/ecs/test`.
export type { FakeEcs, FakeEcsCall, FakeEcsOptions } from './fake-ecs';
export { createFakeEcs, FakeEcsError } from './fake-ecs';
export { createFakeEcsClient } from './fake-ecs-client';
export type { FakeTaskFleet } from './fake-task-fleet';
export { createFakeTaskFleet } from './fake-task-fleet';
