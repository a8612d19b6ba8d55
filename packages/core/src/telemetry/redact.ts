const REDACTED = '[REDACTED]';

/** Query parameters that carry credentials in presigned URLs and the like. */
const SECRET_QUERY_PARAMS =
  /([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|sig|token|api_key|apikey|key|access_token)=)[^&#\s"']*/gi;
const BEARER = /(bearer\s+)[A-Za-z0-9._~+/=-]{6,}/gi;
const MAY_HOLD_TOKEN = /=|bearer/i;

/** Object keys whose values are secrets whatever they hold. */
const SECRET_KEYS =
  /^(?:api[-_]?key|apikey|authorization|password|secret|token|access[-_]?token|x-api-key)$/i;

/**
 * Removes secrets from text bound for a log line, an error or an event: every given secret
 * value, bearer tokens, and signature parameters of presigned URLs.
 */
export function redactSecrets(text: string, secrets: Iterable<string | undefined> = []): string {
  let result = text;
  for (const secret of secrets) {
    if (secret !== undefined && secret.length >= 4 && result.includes(secret))
      result = result.split(secret).join(REDACTED);
  }
  // Most log text has neither a query parameter nor a bearer token: skip the two replacements.
  if (!MAY_HOLD_TOKEN.test(result)) return result;
  return result.replace(SECRET_QUERY_PARAMS, `$1${REDACTED}`).replace(BEARER, `$1${REDACTED}`);
}

/**
 * A JSON-safe copy of any value with every string passed through `redactSecrets`, the values
 * of keys that name a credential (`apiKey`, `authorization`, ...) replaced, errors turned into
 * `{ name, message, ... }`, and binary data replaced by its size. The value is never mutated.
 *
 * @example
 * redactValue({ url: 'https://b.s3/x?X-Amz-Signature=abc', apiKey: 'k' })
 * // { url: 'https://b.s3/x?X-Amz-Signature=[REDACTED]', apiKey: '[REDACTED]' }
 */
export function redactValue(value: unknown, secrets: readonly string[] = [], maxDepth = 8): unknown {
  return walk(value, secrets, maxDepth, new WeakSet());
}

function walk(value: unknown, secrets: readonly string[], depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return redactSecrets(value, secrets);
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'function' || typeof value === 'symbol') return undefined;
    return value;
  }
  if (seen.has(value)) return '[Circular]';
  if (ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  if (value instanceof ArrayBuffer) return `[${value.byteLength} bytes]`;
  if (value instanceof Date) return value.toISOString();
  if (depth <= 0) return '[Truncated]';
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => walk(item, secrets, depth - 1, seen));
    const source: Record<string, unknown> =
      value instanceof Error ? errorFields(value) : (value as Record<string, unknown>);
    const copy: Record<string, unknown> = {};
    for (const key of Object.keys(source)) {
      const item = source[key];
      if (SECRET_KEYS.test(key) && item !== undefined && item !== null && item !== '') {
        copy[key] = REDACTED;
        continue;
      }
      const redacted = walk(item, secrets, depth - 1, seen);
      if (redacted !== undefined) copy[key] = redacted;
    }
    return copy;
  } finally {
    seen.delete(value);
  }
}

function errorFields(error: Error): Record<string, unknown> {
  const json = (error as { toJSON?: () => unknown }).toJSON;
  if (typeof json === 'function') {
    const serialised = json.call(error);
    if (serialised !== null && typeof serialised === 'object') return serialised as Record<string, unknown>;
  }
  return { name: error.name, message: error.message };
}
