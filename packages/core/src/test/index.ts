// Test doubles for @comfy-serverless/core and its adapters: `@comfy-serverless/core/test`.
export * from './accelerated-clock';
export * from './conformance';
export * from './fake-comfy';
export * from './mock-provider';
export * from './simulated-provider';
export * from './virtual-clock';
