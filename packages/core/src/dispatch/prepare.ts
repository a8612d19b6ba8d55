import { createHash } from 'node:crypto';
import type { ApiWorkflow, InputImage, WorkflowRequirements } from '../spec/job';
import { analyzeWorkflow, parseWorkflow, patchWorkflow } from '../workflow';

/** A workflow checked, patched and analysed, ready to journal and route. */
export interface PreparedWorkflow {
  workflow: ApiWorkflow;
  requirements: WorkflowRequirements;
}

/**
 * Parses the workflow (refusing UI-format exports and broken graphs with typed errors),
 * applies the caller's input patches without touching the caller's object, and works out
 * what the job needs from a worker.
 */
export function prepareWorkflow(input: unknown, inputs?: Record<string, unknown>): PreparedWorkflow {
  const parsed = parseWorkflow(input as Parameters<typeof parseWorkflow>[0]);
  const workflow = (
    inputs !== undefined && Object.keys(inputs).length > 0 ? patchWorkflow(parsed, inputs) : parsed
  ) as ApiWorkflow;
  const analysis = analyzeWorkflow(workflow as Parameters<typeof analyzeWorkflow>[0]);
  return {
    workflow,
    requirements: {
      models: analysis.models.map((model) => ({ folder: model.folder, name: model.name })),
      nodeTypes: [...analysis.nodeTypes],
      vramGbEstimate: analysis.vramGbEstimate,
    },
  };
}

/** A fingerprint of a job's request: the same id with a different request is a conflict, not a resubmission. */
export function hashRequest(workflow: ApiWorkflow, images: InputImage[]): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(workflow));
  for (const image of images) {
    hash.update('\0');
    hash.update(image.name);
    hash.update('\0');
    hash.update(typeof image.data === 'string' ? image.data : Buffer.from(image.data));
  }
  return hash.digest('hex');
}
