export type {
  ComfyHistoryEntry,
  ComfyHistoryOutputs,
  ComfyObjectInfo,
  ComfyOutputFile,
  ComfyPromptResponse,
  ComfyQueue,
  ComfySystemStats,
  ComfyUploadResult,
} from './comfy-api';
export type {
  ComfyCancelOutcome,
  ComfyClient,
  ComfyClientOptions,
  ComfyQueueItem,
  ComfyQueueState,
  ComfyUploadOptions,
  QueuePromptOptions,
} from './comfy-client';
export { createComfyClient } from './comfy-client';
export type { ComfyExecutionErrorData } from './comfy-errors';
export { toComfyExecutionError, toComfyValidationError } from './comfy-errors';
export type {
  ComfySocket,
  ComfySocketOptions,
  ComfySocketState,
  ReconnectOptions,
  WebSocketConstructor,
  WebSocketLike,
} from './comfy-socket';
export { connectComfySocket } from './comfy-socket';
export type { ComfyOutputItem } from './outputs';
export { listOutputs, mimeOfFilename } from './outputs';
export type { ProgressTracker } from './progress-tracker';
export { createProgressTracker } from './progress-tracker';
export type { ComfySocketMessage } from './socket-message';
export { parseSocketBinary, parseSocketText, sniffImageMime } from './socket-message';
export type { ComfyWatchEvent, WatchPromptOptions } from './watch-prompt';
