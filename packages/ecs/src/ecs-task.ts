import type { Task } from '@aws-sdk/client-ecs';

/** The ECS task states, in the order a task goes through them. */
export const ECS_TASK_STATES = [
  'PROVISIONING',
  'PENDING',
  'ACTIVATING',
  'RUNNING',
  'DEACTIVATING',
  'STOPPING',
  'DEPROVISIONING',
  'STOPPED',
] as const;

/** Resolves the base URL of ComfyUI inside a task (`http://10.0.3.17:8188`). */
export type ResolveTaskUrl = (task: Task, context: { port: number }) => string | Promise<string>;

/**
 * The task's private IPv4 address: the `privateIPv4Address` detail of its
 * `ElasticNetworkInterface` attachment (awsvpc network mode), else the first container
 * network interface's address.
 */
export function taskPrivateIp(task: Task): string | undefined {
  for (const attachment of task.attachments ?? []) {
    if (attachment.type !== 'ElasticNetworkInterface') continue;
    for (const detail of attachment.details ?? []) {
      if (detail.name === 'privateIPv4Address' && detail.value) return detail.value;
    }
  }
  for (const container of task.containers ?? []) {
    for (const networkInterface of container.networkInterfaces ?? []) {
      if (networkInterface.privateIpv4Address) return networkInterface.privateIpv4Address;
    }
  }
  return undefined;
}

/**
 * The default `resolveTaskUrl`: `http://<private IP>:<port>`. It needs the awsvpc network
 * mode (each task has its own ENI); with bridge or host mode, give your own resolver.
 */
export function defaultTaskUrl(task: Task, context: { port: number }): string {
  const ip = taskPrivateIp(task);
  if (ip === undefined) {
    throw new Error(
      `ECS task ${task.taskArn ?? '?'} has no private IP: use the awsvpc network mode in the task definition, or pass "resolveTaskUrl".`,
    );
  }
  return `http://${ip.includes(':') ? `[${ip}]` : ip}:${context.port}`;
}

/** The short id at the end of a task ARN. */
export function taskIdOf(taskArn: string): string {
  return taskArn.split('/').at(-1) ?? taskArn;
}

/** Whether the task is up and meant to stay up: it may take new jobs. */
export function isTaskServing(task: Task): boolean {
  return task.lastStatus === 'RUNNING' && (task.desiredStatus ?? 'RUNNING') === 'RUNNING';
}
