/**
 * Verifies AWS Signature Version 4 on a request to the ECR API, answering failures as AWS does
 * (the exception's name, its message, its status).
 *
 * The header is parsed strictly, the scope and the date are checked, and then the signature is
 * computed again with @smithy/signature-v4 (the SDK's own signer) over exactly what the client says
 * it signed: the headers SignedHeaders lists, the path and query as received, and the body hashed
 * here. The two signatures are compared in constant time. Nothing here knows HTTP beyond that
 * shape, and nothing of a request's credentials is logged.
 */
import { createHash, createHmac, timingSafeEqual, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { EcrCredential, EcrCredentials } from './ecr-credentials.js';

export interface SignedRequest {
  readonly method: string;
  /** The raw path, as received, without the query. */
  readonly path: string;
  /** The raw query string without its `?`; '' when there is none. */
  readonly query: string;
  /** Node's lowercased headers. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

export type SigV4Result =
  | { readonly ok: true; readonly credential: EcrCredential }
  /** `type`: the AWS exception name (`__type`). */
  | { readonly ok: false; readonly type: string; readonly message: string; readonly status: number };

export interface SigV4VerifierOptions {
  readonly region: string;
  /** The signing name: 'ecr'. */
  readonly service: string;
  readonly credentials: EcrCredentials;
  readonly now?: () => number;
  /** How far X-Amz-Date may be from the clock (default 15 minutes, as AWS). */
  readonly maxSkewMs?: number;
  /**
   * Headers the signature must cover besides host and x-amz-date: for ECR, x-amz-target, so that a
   * signature cannot be replayed as another operation over the same body.
   */
  readonly requiredSignedHeaders?: readonly string[];
}

/** What the head of a request proves before its body is read: the key and the parsed header. */
export type SigV4HeadCheck =
  | { readonly ok: true; readonly credential: EcrCredential; readonly head: CheckedHead }
  | Extract<SigV4Result, { ok: false }>;

interface CheckedHead {
  readonly parsed: ParsedAuthorization;
  readonly signingDate: Date;
}

/** Longest Authorization header read; AWS SDK headers are a few hundred bytes. */
export const MAX_AUTHORIZATION_LENGTH = 4096;
/** Most headers a request may list in SignedHeaders. */
export const MAX_SIGNED_HEADERS = 64;

const ALGORITHM = 'AWS4-HMAC-SHA256';
const TERMINATOR = 'aws4_request';
const DEFAULT_SKEW_MS = 15 * 60 * 1000;
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const SIGNATURE = /^[0-9a-f]{64}$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const SHA256_HEADER = 'x-amz-content-sha256';

const MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

export class SigV4Verifier {
  readonly #region: string;
  readonly #service: string;
  readonly #credentials: EcrCredentials;
  readonly #now: () => number;
  readonly #maxSkewMs: number;
  readonly #required: readonly string[];
  /** One signer per access key id (the configuration's credentials: a bounded set). */
  readonly #signers = new Map<string, { credential: EcrCredential; signer: SignatureV4 }>();

  constructor(options: SigV4VerifierOptions) {
    this.#region = options.region;
    this.#service = options.service;
    this.#credentials = options.credentials;
    this.#now = options.now ?? Date.now;
    this.#maxSkewMs = options.maxSkewMs ?? DEFAULT_SKEW_MS;
    this.#required = (options.requiredSignedHeaders ?? []).map((h) => h.toLowerCase());
  }

  /**
   * Everything that can be checked before the body is read (the header's shape, a known key, the
   * scope, the clock, the headers that must be signed): a caller reads a large body only after it.
   */
  checkHead(request: Omit<SignedRequest, 'body'>): SigV4HeadCheck {
    const header = single(request.headers.authorization);
    if (header === undefined || header === '') return fail('MissingAuthenticationTokenException', 'Missing Authentication Token', 403);
    const parsed = parseAuthorization(header);
    if ('type' in parsed) return parsed;
    const { accessKeyId, scopeDate, region, service, signedHeaders, signature } = parsed;

    const credential = this.#credentials.find(accessKeyId);
    if (!credential) return fail('UnrecognizedClientException', 'The security token included in the request is invalid.', 400);

    const amzDate = single(request.headers['x-amz-date']);
    const signingDate = amzDate === undefined ? undefined : parseAmzDate(amzDate);
    if (amzDate === undefined || signingDate === undefined) {
      return fail('IncompleteSignatureException', "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.", 400);
    }
    if (scopeDate !== amzDate.slice(0, 8)) {
      return invalid(
        `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scopeDate}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`,
      );
    }
    if (region !== this.#region) return invalid(`Credential should be scoped to a valid region, not '${region}'. `);
    if (service !== this.#service) return invalid(`Credential should be scoped to correct service: '${this.#service}'. `);
    if (!signedHeaders.includes('host')) return invalid("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
    if (!signedHeaders.includes('x-amz-date')) return invalid("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.");
    for (const name of this.#required) {
      if (!signedHeaders.includes(name)) return invalid(`'${name}' must be a 'SignedHeader' in the AWS Authorization.`);
    }

    const now = this.#now();
    if (signingDate.getTime() < now - this.#maxSkewMs) {
      return invalid(`Signature expired: ${amzDate} is now earlier than ${amz(now - this.#maxSkewMs)} (${amz(now)} - ${minutes(this.#maxSkewMs)} min.)`);
    }
    if (signingDate.getTime() > now + this.#maxSkewMs) {
      return invalid(`Signature not yet current: ${amzDate} is still later than ${amz(now + this.#maxSkewMs)} (${amz(now)} + ${minutes(this.#maxSkewMs)} min.)`);
    }
    return { ok: true, credential, head: { parsed, signingDate } };
  }

  /** The whole check: the head (again, unless `checked` is the head's result) and the signature over the body. */
  async verify(request: SignedRequest, checked?: SigV4HeadCheck): Promise<SigV4Result> {
    const head = checked ?? this.checkHead(request);
    if (!head.ok) return head;
    const { credential } = head;
    const { signingDate } = head.head;
    const { region, service, signedHeaders, signature } = head.head.parsed;

    // The headers as signed: exactly the listed ones, multiple values joined with commas as AWS does.
    const headers: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const name of signedHeaders) {
      const value = Object.hasOwn(request.headers, name) ? request.headers[name] : undefined;
      if (typeof value === 'string') headers[name] = value;
      else if (Array.isArray(value)) headers[name] = value.join(',');
    }
    // The payload hash is always ours: a signed X-Amz-Content-SHA256 must equal it.
    const payloadHash = createHash('sha256').update(request.body).digest('hex');
    const claimed = headers[SHA256_HEADER];
    if (claimed !== undefined && claimed.trim() !== payloadHash) return invalid(MISMATCH);
    const unsigned = claimed === undefined ? UNSIGNED_SHA256 : undefined;
    // Unsigned, it only hands the signer our hash (the signer takes it instead of hashing again).
    headers[SHA256_HEADER] = payloadHash;

    const query = parseQuery(request.query);
    if (query === undefined) return fail('IncompleteSignatureException', 'The query string is malformed.', 400);
    const signed = await this.#signerFor(credential).sign(
      { method: request.method, protocol: 'https:', hostname: 'localhost', path: request.path, query, headers },
      {
        signingDate,
        signingRegion: region,
        signingService: service,
        signableHeaders: new Set(signedHeaders),
        ...(unsigned ? { unsignableHeaders: unsigned } : {}),
      },
    );
    const ours = /SignedHeaders=([^,]*), Signature=([0-9a-f]{64})$/.exec(String(signed.headers.authorization ?? ''));
    // The signer signs the headers present: a listed header that is absent (or out of order) is
    // a list the client did not sign as given.
    if (!ours || ours[1] !== signedHeaders.join(';')) return invalid(MISMATCH);
    if (!timingSafeEqual(Buffer.from(ours[2]!), Buffer.from(signature))) return invalid(MISMATCH);
    return { ok: true, credential };
  }

  #signerFor(credential: EcrCredential): SignatureV4 {
    const known = this.#signers.get(credential.accessKeyId);
    if (known && known.credential === credential) return known.signer;
    const signer = new SignatureV4({
      service: this.#service,
      region: this.#region,
      credentials: { accessKeyId: credential.accessKeyId, secretAccessKey: credential.secretAccessKey },
      sha256: NodeSha256,
      uriEscapePath: true,
      // Sign only what the client signed: never add a checksum header of our own.
      applyChecksum: false,
    });
    this.#signers.set(credential.accessKeyId, { credential, signer });
    return signer;
  }
}

const UNSIGNED_SHA256 = new Set([SHA256_HEADER]);

interface ParsedAuthorization {
  readonly accessKeyId: string;
  readonly scopeDate: string;
  readonly region: string;
  readonly service: string;
  readonly signedHeaders: readonly string[];
  readonly signature: string;
}

type Failure = Extract<SigV4Result, { ok: false }>;

/**
 * `AWS4-HMAC-SHA256 Credential=<id>/<date>/<region>/<service>/aws4_request, SignedHeaders=a;b, Signature=<hex>`:
 * each component once, in any order, separated by commas (spaces around them allowed).
 */
export function parseAuthorization(header: string): ParsedAuthorization | Failure {
  if (header.length > MAX_AUTHORIZATION_LENGTH) return incomplete('The Authorization header is too long.');
  const space = header.indexOf(' ');
  const algorithm = space < 0 ? header : header.slice(0, space);
  if (algorithm !== ALGORITHM) {
    // Not a SigV4 header at all (Basic, Bearer, a bare key, ...): never echoed, it may be a secret.
    return incomplete(`Authorization header must use the '${ALGORITHM}' algorithm.`);
  }
  const components = new Map<string, string>();
  for (const part of header.slice(space + 1).split(',')) {
    const text = part.trim();
    const eq = text.indexOf('=');
    const name = eq < 0 ? text : text.slice(0, eq);
    if (eq <= 0 || !['Credential', 'SignedHeaders', 'Signature'].includes(name) || components.has(name)) {
      return incomplete(`Authorization header has a malformed component: each of Credential, SignedHeaders and Signature must appear once as name=value.`);
    }
    components.set(name, text.slice(eq + 1));
  }
  const missing = ['Credential', 'Signature', 'SignedHeaders'].filter((n) => !components.get(n));
  if (missing.length > 0) return incomplete(missing.map((n) => `Authorization header requires '${n}' parameter.`).join(' '));

  const scope = components.get('Credential')!.split('/');
  if (scope.length !== 5) {
    return incomplete('Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term.');
  }
  const [accessKeyId, scopeDate, region, service, terminator] = scope as [string, string, string, string, string];
  if (!/^[A-Za-z0-9]{1,128}$/.test(accessKeyId)) return incomplete('Credential has a malformed access key id.');
  if (!/^\d{8}$/.test(scopeDate)) return incomplete('Credential has a malformed date: expected YYYYMMDD.');
  if (!/^[a-z0-9-]{1,64}$/.test(region) || !/^[a-z0-9-]{1,64}$/.test(service)) {
    return incomplete('Credential has a malformed region or service.');
  }
  if (terminator !== TERMINATOR) {
    return invalid(`Credential should be scoped with a valid terminator: '${TERMINATOR}'.`);
  }

  const signedHeaders = components.get('SignedHeaders')!.split(';');
  if (
    signedHeaders.length > MAX_SIGNED_HEADERS ||
    signedHeaders.some((h) => !HEADER_NAME.test(h)) ||
    new Set(signedHeaders).size !== signedHeaders.length
  ) {
    return incomplete('SignedHeaders must be distinct lowercase header names separated by semicolons.');
  }
  const signature = components.get('Signature')!;
  if (!SIGNATURE.test(signature)) return incomplete('Signature must be 64 lowercase hexadecimal characters.');
  return { accessKeyId, scopeDate, region, service, signedHeaders, signature };
}

/** X-Amz-Date's basic ISO 8601 form (20240102T030405Z), as a Date; undefined when malformed or impossible. */
function parseAmzDate(value: string): Date | undefined {
  const m = AMZ_DATE.exec(value);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  // Date.UTC rolls 20240230 over to March: refuse what does not round-trip.
  return amz(date.getTime()) === value ? date : undefined;
}

/** A time in X-Amz-Date's form. */
function amz(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

function minutes(ms: number): string {
  return String(Math.round(ms / 60_000));
}

/**
 * The raw query string as the signer wants it: decoded names and values, repeated names as lists.
 * `+` is taken literally (SigV4 clients encode a space as %20). Undefined when an escape is broken.
 */
function parseQuery(raw: string): Record<string, string | string[]> | undefined {
  const query: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  if (raw === '') return query;
  try {
    for (const pair of raw.split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const name = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
      const value = eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1));
      const seen = query[name];
      query[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
    }
  } catch {
    return undefined;
  }
  return query;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function fail(type: string, message: string, status: number): Failure {
  return { ok: false, type, message, status };
}

function invalid(message: string): Failure {
  return fail('InvalidSignatureException', message, 400);
}

function incomplete(message: string): Failure {
  return fail('IncompleteSignatureException', message, 400);
}

type SourceData = string | ArrayBuffer | ArrayBufferView;

/** SHA-256 (or, given a secret, HMAC-SHA256) on node:crypto, in the shape the signer takes. */
export class NodeSha256 {
  readonly #hash: Hash | Hmac;

  constructor(secret?: SourceData) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }

  update(data: SourceData): void {
    this.#hash.update(bytes(data));
  }

  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
}

function bytes(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}
