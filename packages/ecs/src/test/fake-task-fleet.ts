import type { Task } from '@aws-sdk/client-ecs';
import {
  type FakeComfyServer,
  type FakeComfyServerOptions,
  type FakeJobBehaviour,
  startFakeComfyServer,
} from '@comfy-serverless/core/test';
import { taskPrivateIp } from '../ecs-task';

/** Fake ComfyUI servers standing in for ECS tasks, one per task private IP. */
export interface FakeTaskFleet {
  /**
   * A `resolveTaskUrl` for `createEcs`: maps a task's private IP to its own fake ComfyUI
   * on 127.0.0.1, started on first use. Only loopback addresses are ever returned.
   */
  resolveTaskUrl(task: Task): Promise<string>;
  /** The fake server of a private IP, once started. */
  server(ip: string): FakeComfyServer | undefined;
  /** Every fake server by private IP. */
  servers(): Map<string, FakeComfyServer>;
  /** Arranges the next job on every server started so far and on every server started later. */
  arrangeAll(behaviour: FakeJobBehaviour): void;
  close(): Promise<void>;
}

/**
 * Starts fake ComfyUI servers lazily, one per ECS task, so that tests reach "task private
 * IPs" without leaving the machine.
 *
 * @example
 * const fleet = createFakeTaskFleet({ stepMs: 2 });
 * const provider = createEcs({ ..., resolveTaskUrl: fleet.resolveTaskUrl });
 */
export function createFakeTaskFleet(options: FakeComfyServerOptions = {}): FakeTaskFleet {
  const servers = new Map<string, FakeComfyServer>();
  const starting = new Map<string, Promise<FakeComfyServer>>();
  let pendingBehaviour: FakeJobBehaviour | undefined;

  const startFor = (ip: string) => {
    let promise = starting.get(ip);
    if (promise === undefined) {
      promise = startFakeComfyServer(options).then((server) => {
        servers.set(ip, server);
        if (pendingBehaviour !== undefined) server.arrange(pendingBehaviour);
        return server;
      });
      starting.set(ip, promise);
    }
    return promise;
  };

  return {
    async resolveTaskUrl(task) {
      const ip = taskPrivateIp(task);
      if (ip === undefined) throw new Error(`Task ${task.taskArn ?? '?'} has no private IP yet.`);
      const server = await startFor(ip);
      const url = new URL(server.url);
      if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost' && url.hostname !== '[::1]') {
        throw new Error(`The fake task fleet refuses a non-loopback address: ${server.url}`);
      }
      return server.url;
    },
    server: (ip) => servers.get(ip),
    servers: () => new Map(servers),
    arrangeAll(behaviour) {
      pendingBehaviour = behaviour;
      for (const server of servers.values()) server.arrange(behaviour);
    },
    async close() {
      const all = await Promise.all(starting.values());
      await Promise.all(all.map((server) => server.close()));
    },
  };
}
