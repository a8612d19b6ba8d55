import { ApiCallError, InvalidResponseError } from '../spec/errors';
import type { ByteRange } from './part-download';

/**
 * Checks the `Content-Range` of a ranged answer (`bytes 0-99/1000`) against the range asked
 * for and the object size the download expects. A different total size means the object
 * was replaced: an `ApiCallError` with status 416, so the download starts over on the new
 * version. A different range means the server ignored ours: `InvalidResponseError`.
 * A missing header is accepted (some servers omit it on a 206).
 */
export function assertContentRange(
  contentRange: string | null | undefined,
  range: ByteRange,
  sizeBytes: number,
  url: string,
): void {
  if (contentRange === undefined || contentRange === null) return;
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange.trim());
  if (match !== null && match[3] !== '*' && Number(match[3]) !== sizeBytes) {
    throw new ApiCallError({
      message: `${url} is now ${match[3]} bytes, not ${sizeBytes}; it was replaced during the download.`,
      url,
      statusCode: 416,
      isRetryable: true,
    });
  }
  if (match === null || Number(match[1]) !== range.start || Number(match[2]) !== range.end) {
    throw new InvalidResponseError({
      message: `${url} answered the range ${range.start}-${range.end} with "${contentRange}"; the server does not honour ranges correctly.`,
      url,
    });
  }
}
