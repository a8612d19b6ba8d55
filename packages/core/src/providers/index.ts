export type { SelfHostedSettings } from './self-hosted';
export { createSelfHosted } from './self-hosted';
