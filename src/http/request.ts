import type { FastifyRequest } from 'fastify';
import { RegistryError } from '../oci/errors.js';
import type { ByteRange } from '../storage/blob-store.js';

/** Whether the request carries a body (a non-zero Content-Length or a chunked one). */
export function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  if (length !== undefined) return Number(length) > 0;
  return request.headers['transfer-encoding'] !== undefined;
}

export function contentLength(request: FastifyRequest): number | undefined {
  const value = request.headers['content-length'];
  return value === undefined ? undefined : Number(value);
}

/**
 * A chunk's Content-Range, `<start>-<end>` as the OCI spec writes it; the
 * `bytes ` prefix and a `/total` suffix of RFC 9110 are accepted too.
 */
export function parseContentRange(value: string | undefined): { start: number; end: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(value.trim());
  const start = Number(m?.[1]);
  const end = Number(m?.[2]);
  if (!m || !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', `invalid Content-Range ${JSON.stringify(value)}`, { status: 416 });
  }
  return { start, end };
}

/**
 * The byte range a GET asks for. Returns undefined for no Range (or one this
 * server ignores, as RFC 9110 allows: multiple ranges, other units); null when
 * the range cannot be satisfied.
 */
export function parseRange(value: string | undefined, size: number): ByteRange | undefined | null {
  if (value === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return null;
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return null;
  return { start, end };
}

/** Reads a small body into memory, refusing more than `limit` bytes. */
export async function readBody(request: FastifyRequest, limit: number, tooLarge: () => Error): Promise<Buffer> {
  const declared = contentLength(request);
  if (declared !== undefined && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of request.raw) {
    total += (chunk as Buffer).length;
    if (total > limit) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, total);
}

/** A query parameter as a single string (the first, when repeated). */
export function queryParam(request: FastifyRequest, name: string): string | undefined {
  const value = (request.query as Record<string, string | string[] | undefined>)[name];
  return Array.isArray(value) ? value[0] : value;
}

export function queryParams(request: FastifyRequest, name: string): string[] {
  const value = (request.query as Record<string, string | string[] | undefined>)[name];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

/** `n` and `last` of a paginated listing; `n` absent means no limit. */
export function pagination(request: FastifyRequest): { n: number | undefined; last: string } {
  const raw = queryParam(request, 'n');
  let n: number | undefined;
  if (raw !== undefined && raw !== '') {
    n = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) {
      throw new RegistryError('UNSUPPORTED', 'n must be a non-negative integer', { status: 400, detail: { n: raw } });
    }
  }
  return { n, last: afterKey(queryParam(request, 'last') ?? '') };
}

/**
 * A `last` value as the index compares it (byte order): cut at its first NUL. No stored name,
 * tag or digest holds a NUL, so the names after `a<NUL>b` are exactly those after `a`; and
 * PostgreSQL refuses a NUL in text.
 */
export function afterKey(value: string): string {
  const nul = value.indexOf('\u0000');
  return nul < 0 ? value : value.slice(0, nul);
}
