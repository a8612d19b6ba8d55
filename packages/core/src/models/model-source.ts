import type { ModelRef } from '../spec/job';

/** What a source knows about one stored model before downloading it. */
export interface ModelObjectInfo {
  sizeBytes: number;
  /** The entity tag the source uses to tell versions apart; downloads are pinned to it. */
  etag?: string;
  /** The file's sha256 (hex), when the source stores one. */
  sha256?: string;
}

/** Progress of one download, in bytes, resumed bytes included. */
export interface ModelDownloadProgress {
  bytesDone: number;
  bytesTotal: number;
}

/** Options of `ModelSource.download`. */
export interface ModelDownloadOptions {
  /**
   * The temporary file to write. It may hold a partial earlier download of the same
   * object, with its progress in `<filePath>.state.json`; the source resumes from it.
   */
  filePath: string;
  /** What `stat` returned, when the caller already asked; saves a request. */
  info?: ModelObjectInfo;
  signal?: AbortSignal;
  onProgress?: (progress: ModelDownloadProgress) => void;
}

/** What one download did. */
export interface ModelDownloadResult {
  sizeBytes: number;
  /** Bytes fetched over the network by this call (resumed bytes are not counted). */
  bytesDownloaded: number;
  /** Bytes found already written by an earlier, interrupted download. */
  resumedBytes: number;
  etag?: string;
  sha256?: string;
}

/**
 * Where models come from: an S3 bucket (`@comfy-serverless/s3`), an HTTP server
 * (`createHttpModelSource`), or your own. A source writes a file; the cache decides where
 * it goes and when it becomes visible.
 */
export interface ModelSource {
  /** A readable name for logs and errors (`s3://bucket/prefix`), never holding secrets. */
  readonly id: string;
  /** Reads the size (and version tag) of a model without downloading it. */
  stat(model: ModelRef, options?: { signal?: AbortSignal }): Promise<ModelObjectInfo>;
  /** Downloads a model into `options.filePath`, resuming what an earlier attempt left there. */
  download(model: ModelRef, options: ModelDownloadOptions): Promise<ModelDownloadResult>;
}
