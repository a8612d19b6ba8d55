const REDACTED = '[REDACTED]';

/** Query parameters that carry credentials in presigned URLs and the like. */
const SECRET_QUERY_PARAMS =
  /([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|sig|token|api_key|apikey|key|access_token)=)[^&#\s"']*/gi;
const BEARER = /(bearer\s+)[A-Za-z0-9._~+/=-]{6,}/gi;

/**
 * Removes secrets from text bound for a log line, an error or an event: every given secret
 * value, bearer tokens, and signature parameters of presigned URLs.
 */
export function redactSecrets(text: string, secrets: Iterable<string | undefined> = []): string {
  let result = text;
  for (const secret of secrets) {
    if (secret !== undefined && secret.length >= 4) result = result.split(secret).join(REDACTED);
  }
  return result.replace(SECRET_QUERY_PARAMS, `$1${REDACTED}`).replace(BEARER, `$1${REDACTED}`);
}
