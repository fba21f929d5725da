/**
 * The OCI distribution error codes, as one table. Code that fails raises a RegistryError;
 * the HTTP layer alone turns it into the spec's JSON envelope.
 *
 * Every client error uses a code of the spec's table, which says the code MUST be one of
 * them: a malformed tag is MANIFEST_INVALID, a malformed query parameter is UNSUPPORTED
 * ("an invalid set of parameters") with status 400.
 */
export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a blob unknown to the repository' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  // ECR's code for a push that would move an immutable tag (docker prints "tag invalid: <message>").
  TAG_INVALID: { status: 400, message: 'tag invalid' },
  // Not in the spec's table, which binds client errors only: server faults, shutdown, a full disk.
  UNKNOWN: { status: 500, message: 'unknown error' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  INSUFFICIENT_STORAGE: { status: 507, message: 'insufficient storage' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;

  constructor(code: ErrorCode, message?: string, options: { detail?: unknown; status?: number } = {}) {
    super(message ?? ERROR_CODES[code].message);
    this.name = 'RegistryError';
    this.code = code;
    this.status = options.status ?? ERROR_CODES[code].status;
    this.detail = options.detail;
  }
}

/** A chunk that does not continue an upload (416); it says where the upload stands. */
export class UploadRangeError extends RegistryError {
  override name = 'UploadRangeError';
  constructor(
    readonly repo: string,
    readonly uuid: string,
    readonly size: number,
    message = 'the chunk does not continue the upload',
  ) {
    super('BLOB_UPLOAD_INVALID', message, { status: 416, detail: { uuid, size } });
  }
}

/** A blob's Range that cannot be satisfied (416). */
export class RangeNotSatisfiableError extends RegistryError {
  override name = 'RangeNotSatisfiableError';
  constructor(readonly size: number) {
    super('SIZE_INVALID', 'requested range not satisfiable', { status: 416, detail: { size } });
  }
}

export function errorBody(code: ErrorCode, message: string, detail?: unknown): string {
  const entry: { code: string; message: string; detail?: unknown } = { code, message };
  if (detail !== undefined) entry.detail = detail;
  return JSON.stringify({ errors: [entry] });
}
