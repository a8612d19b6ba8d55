import type { WorkflowRequirements } from './job';
import type { ImageDescriptor } from './provider-v1';

/** How well one image fits a job. */
export interface ImageScore {
  imageId: string;
  /** 0..1: share of the job's model bytes the image already has. */
  score: number;
  missingModels: string[];
  missingNodeTypes: string[];
  /** Bytes the job's models take that the image lacks (to be loaded). */
  missingBytes: number;
}

/** Chooses among worker images for a job. */
export interface ImageSelectorV1 {
  readonly specificationVersion: 'v1';
  /** Scores every candidate, best first; images lacking a node type come last with score 0. */
  select(requirements: WorkflowRequirements, images: ImageDescriptor[]): ImageScore[];
}
