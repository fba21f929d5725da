/**
 * The Amazon ECR API as AWS serves it: `POST /` with `X-Amz-Target:
 * AmazonEC2ContainerRegistry_V20150921.<Operation>` and a JSON 1.1 body, signed with SigV4.
 * This surface reads the body (bounded), verifies the signature, builds the OperationContext
 * (the caller and its rights under the access rules) and turns results and EcrErrors into AWS's
 * JSON shapes. The operations themselves live in src/ecr/.
 */
import { BlobDeletingError, IndexTextError, LockLostError, LockTimeoutError } from '../../index/contract.js';
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Auth } from '../../auth/setup.js';
import type { SigV4HeadCheck, SigV4Result, SignedRequest } from '../../auth/sigv4.js';
import type { Config, EcrConfig, Action } from '../../config/config.js';
import { EcrError, ecrErrors } from '../../ecr/errors.js';
import type { EcrCaller, OperationContext, OperationTable } from '../../ecr/operation.js';
import type { EcrServices } from '../../ecr/services.js';
import { InputValidationError } from '../../ecr/validate.js';
import type { Registry } from '../../registry/registry.js';
import { RegistryError } from '../../oci/errors.js';
import { isValidName } from '../../oci/names.js';
import { ImmutableTagError, RepositoryNotFoundError } from '../../registry/repository-rules.js';
import { StoreUnavailableError, toStorageFullError } from '../../storage/blob-store.js';
import { eventOrigin, requestSignal } from '../context.js';
import { isClientGone } from '../errors.js';
import { noteRequest } from '../observe.js';

/** Sent as a Buffer, so that Fastify adds no charset (AWS sends none). */
const AMZ_JSON = 'application/x-amz-json-1.1';

export const TARGET_PREFIX = 'AmazonEC2ContainerRegistry_V20150921.';

/** Request bodies are JSON documents read whole: bounded per operation. */
const DEFAULT_BODY_LIMIT = 1024 * 1024;
const BODY_LIMITS: Readonly<Record<string, number>> = {
  // A part of at most 20 MiB, base64-encoded (4/3), with the JSON around it.
  UploadLayerPart: 28 * 1024 * 1024,
  // A manifest of at most 4 MiB, escaped into a JSON string (up to 6 bytes for a control character).
  PutImage: 25 * 1024 * 1024,
  PutLifecyclePolicy: 256 * 1024,
};

/** Operations that write: refused while the registry is read-only. */
const WRITES = new Set([
  'CreateRepository',
  'DeleteRepository',
  'PutImageTagMutability',
  'PutImageScanningConfiguration',
  'SetRepositoryPolicy',
  'DeleteRepositoryPolicy',
  'TagResource',
  'UntagResource',
  'CreateRepositoryCreationTemplate',
  'UpdateRepositoryCreationTemplate',
  'DeleteRepositoryCreationTemplate',
  'PutRegistryPolicy',
  'DeleteRegistryPolicy',
  'PutImage',
  'BatchDeleteImage',
  'InitiateLayerUpload',
  'UploadLayerPart',
  'CompleteLayerUpload',
  'PutLifecyclePolicy',
  'DeleteLifecyclePolicy',
  'CreatePullThroughCacheRule',
  'UpdatePullThroughCacheRule',
  'DeletePullThroughCacheRule',
]);

/**
 * The operations whose model lists ValidationException; the others (the older ones) answer a
 * constraint a value breaks with InvalidParameterException, as ECR does.
 */
const VALIDATION_OPERATIONS = new Set([
  'CreatePullThroughCacheRule',
  'CreateRepositoryCreationTemplate',
  'DeletePullThroughCacheRule',
  'DeleteLifecyclePolicy',
  'DeleteRegistryPolicy',
  'DeleteRepositoryCreationTemplate',
  'DescribePullThroughCacheRules',
  'DescribeRegistry',
  'DescribeRepositoryCreationTemplates',
  'GetLifecyclePolicy',
  'GetLifecyclePolicyPreview',
  'GetRegistryPolicy',
  'ListImageReferrers',
  'PutImageScanningConfiguration',
  'PutLifecyclePolicy',
  'PutRegistryPolicy',
  'StartLifecyclePolicyPreview',
  'UpdatePullThroughCacheRule',
  'UpdateRepositoryCreationTemplate',
  'ValidatePullThroughCacheRule',
]);

/** Operations that delete images: refused when deletes are disabled. */
const DELETES = new Set(['DeleteRepository', 'BatchDeleteImage']);

export interface EcrSurface {
  readonly registry: Registry;
  readonly config: Config;
  readonly ecr: EcrConfig;
  readonly auth: Auth & { readonly ecr: NonNullable<Auth['ecr']> };
  readonly services: EcrServices;
  readonly operations: OperationTable;
}

export async function ecrRoutes(app: FastifyInstance, surface: EcrSurface): Promise<void> {
  const bodies = new BodyBudget(BODY_BUDGET);
  app.route({
    method: 'POST',
    url: '/',
    // Signed with SigV4: the signature is verified below, before any operation, and each
    // operation then asks for its right on its repository (ctx.require).
    config: { need: { kind: 'signed' } },
    handler: async (request, reply) => {
      const requestId = randomUUID();
      reply.header('x-amzn-RequestId', requestId);
      let operation = '';
      try {
        operation = targetOperation(request);
        // The head first (a known key, a fresh date, the required headers signed): no body is read
        // for a caller that cannot have signed it, and only a bounded total of bodies at once.
        const head = checkHead(surface, request);
        const body = await bodies.read(request, BODY_LIMITS[operation] ?? DEFAULT_BODY_LIMIT);
        const caller = await authenticate(surface, request, body, head);
        request.identity = caller;
        const run = Object.hasOwn(surface.operations, operation) ? surface.operations[operation] : undefined;
        if (!run) throw new EcrError('UnknownOperationException', `Operation ${operation} is not supported by this registry`);
        // Parts of a layer are not audited one by one: its InitiateLayerUpload and CompleteLayerUpload are.
        noteRequest(request, { operation, write: WRITES.has(operation) && operation !== 'UploadLayerPart' });
        checkContentType(request);
        const input = parseInput(body);
        if (typeof input.repositoryName === 'string' && isValidName(input.repositoryName)) noteRequest(request, { repository: input.repositoryName });
        assertAllowed(surface.config, operation);
        const output = await run(input, context(surface, request, caller, operation));
        return reply.code(200).header('content-type', AMZ_JSON).send(Buffer.from(JSON.stringify(output)));
      } catch (err) {
        return sendEcrError(request, reply, toEcrError(request, err, operation));
      }
    },
  });
}

/** The operation an X-Amz-Target names. */
function targetOperation(request: FastifyRequest): string {
  const target = request.headers['x-amz-target'];
  if (typeof target !== 'string' || !target.startsWith(TARGET_PREFIX) || !/^[A-Za-z]{1,64}$/.test(target.slice(TARGET_PREFIX.length))) {
    throw new EcrError('UnknownOperationException', 'The X-Amz-Target header does not name an operation of this service');
  }
  return target.slice(TARGET_PREFIX.length);
}

function checkContentType(request: FastifyRequest): void {
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-amz-json-1.1' && type !== 'application/x-amz-json-1.0' && type !== 'application/json') {
    throw new EcrError('SerializationException', `Content-Type ${JSON.stringify(type)} is not supported; send application/x-amz-json-1.1`);
  }
}

/** Bytes of request bodies held at once, over every ECR request (four of the largest parts). */
const BODY_BUDGET = 4 * (BODY_LIMITS.UploadLayerPart ?? DEFAULT_BODY_LIMIT);

/**
 * Reads request bodies whole, each within its operation's limit, and all of them together within a
 * budget: a request whose body would not fit now is refused with ThrottlingException (the SDKs
 * retry it), so that slow or parallel uploads cannot hold unbounded memory.
 */
class BodyBudget {
  private held = 0;

  constructor(private readonly budget: number) {}

  async read(request: FastifyRequest, limit: number): Promise<Buffer> {
    const declared = Number(request.headers['content-length'] ?? 0);
    if (declared > limit) throw tooLarge(limit);
    // Without a length (chunked), the operation's limit is what the body may take.
    const reserved = declared > 0 ? declared : limit;
    if (this.held + reserved > this.budget) {
      throw new EcrError('ThrottlingException', 'Rate exceeded: too many request bodies are being received; retry shortly');
    }
    this.held += reserved;
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of request.raw) {
        size += (chunk as Buffer).length;
        if (size > Math.min(limit, reserved)) {
          request.raw.destroy();
          throw size > limit ? tooLarge(limit) : new EcrError('SerializationException', 'The body is longer than its Content-Length');
        }
        chunks.push(chunk as Buffer);
      }
      return Buffer.concat(chunks, size);
    } finally {
      this.held -= reserved;
    }
  }
}

function tooLarge(limit: number): EcrError {
  return new EcrError('RequestEntityTooLargeException', `The request body is larger than this operation accepts (${limit} bytes)`, 413);
}

function signedRequest(request: FastifyRequest): Omit<SignedRequest, 'body'> {
  const url = request.raw.url ?? '/';
  const q = url.indexOf('?');
  return { method: request.method, path: q < 0 ? url : url.slice(0, q), query: q < 0 ? '' : url.slice(q + 1), headers: request.headers };
}

function refused(request: FastifyRequest, result: Extract<SigV4Result, { ok: false }>): EcrError {
  request.server.metrics?.authFailure('invalid');
  request.log.info(
    { reason: result.type, audit: { action: 'login.failure', via: 'sigv4', addr: request.ip, reason: result.type } },
    'ECR request signature refused',
  );
  return new EcrError(result.type, result.message, result.status);
}

function checkHead(surface: EcrSurface, request: FastifyRequest): SigV4HeadCheck {
  const head = surface.auth.ecr.sigv4.checkHead(signedRequest(request));
  if (!head.ok) throw refused(request, head);
  return head;
}

async function authenticate(surface: EcrSurface, request: FastifyRequest, body: Buffer, head: SigV4HeadCheck): Promise<EcrCaller> {
  const result = await surface.auth.ecr.sigv4.verify({ ...signedRequest(request), body }, head);
  if (!result.ok) throw refused(request, result);
  return { kind: 'user', name: result.credential.user, via: 'ecr', keyId: result.credential.accessKeyId };
}

function parseInput(body: Buffer): Readonly<Record<string, unknown>> {
  if (body.length === 0) return {};
  let input: unknown;
  try {
    input = JSON.parse(body.toString('utf8'));
  } catch {
    throw new EcrError('SerializationException', 'The request body is not valid JSON');
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new EcrError('SerializationException', 'The request body must be a JSON object');
  }
  return input as Record<string, unknown>;
}

function assertAllowed(config: Config, operation: string): void {
  if (config.storage.readOnly && WRITES.has(operation)) {
    throw ecrErrors.invalidParameter(`The registry is in read-only mode (storage.maintenance.readonly): ${operation} is refused`);
  }
  if (!config.storage.deleteEnabled && DELETES.has(operation)) {
    throw ecrErrors.invalidParameter(`Deletes are disabled on this registry (storage.delete.enabled): ${operation} is refused`);
  }
}

function context(surface: EcrSurface, request: FastifyRequest, caller: EcrCaller, operation: string): OperationContext {
  const { ecr, auth } = surface;
  const publicUrl = surface.config.http.publicUrl;
  const baseUrl = publicUrl ?? `${request.protocol}://${request.host}`;
  const registryHost = new URL(baseUrl).host;
  const repositoryArn = (name: string) => `arn:aws:ecr:${ecr.region}:${ecr.accountId}:repository/${name}`;
  const userArn = `arn:aws:iam::${ecr.accountId}:user/${caller.name}`;
  const may = (repo: string, action: Action) =>
    auth.authorizer.decide(caller, { kind: 'repository', name: repo, actions: [action] }).allowed;
  return {
    registry: surface.registry,
    ecr,
    services: surface.services,
    caller,
    operation,
    registryHost,
    baseUrl,
    redirect: surface.config.storage.redirect,
    signal: requestSignal(request),
    origin: surface.registry.events ? eventOrigin(request, publicUrl) : undefined,
    may,
    require(repo, action) {
      if (!may(repo, action)) throw ecrErrors.accessDenied(userArn, operation, repositoryArn(repo));
    },
    requireRegistry() {
      if (!auth.authorizer.managesRegistry(caller)) {
        throw ecrErrors.accessDenied(userArn, operation, `arn:aws:ecr:${ecr.region}:${ecr.accountId}:registry/${ecr.accountId}`);
      }
    },
    repositoryArn,
  };
}

/** What a failure answers: an EcrError as it is; the registry's own errors in ECR's terms. */
function toEcrError(request: FastifyRequest, err: unknown, operation: string): EcrError {
  if (err instanceof InputValidationError && !VALIDATION_OPERATIONS.has(operation)) return err.asInvalidParameter();
  if (err instanceof EcrError) return err;
  if (err instanceof RepositoryNotFoundError) return ecrErrors.repositoryNotFound(err.repository, err.registryId);
  if (err instanceof ImmutableTagError) return new EcrError('ImageTagAlreadyExistsException', err.message);
  if (err instanceof RegistryError && err.status < 500) return ecrErrors.invalidParameter(err.message);
  if (err instanceof IndexTextError) return ecrErrors.invalidParameter(err.message);
  if (err instanceof LockTimeoutError || err instanceof LockLostError) {
    return new EcrError('ServerException', 'The repository is busy with another write; retry later', 500);
  }
  if (err instanceof BlobDeletingError) {
    return new EcrError('ServerException', 'The layer is being deleted by the garbage collector; retry later', 500);
  }
  if (err instanceof StoreUnavailableError) {
    request.log.warn({ err, operation }, 'storage backend unavailable');
    return new EcrError('ServerException', 'The storage backend is unavailable; retry later', 500);
  }
  if (isClientGone(err, request)) {
    request.log.info({ code: (err as NodeJS.ErrnoException).code, operation }, 'client closed the connection mid-request');
    return new EcrError('SerializationException', 'The request body ended early');
  }
  if (toStorageFullError(err) || (err as { code?: unknown })?.code === 'SQLITE_FULL') {
    request.log.error({ err, operation }, 'storage full');
    return new EcrError('ServerException', 'The registry cannot store this: its storage is full; nothing was stored', 500);
  }
  request.log.error({ err, operation }, 'ECR operation failed');
  return ecrErrors.server();
}

function sendEcrError(request: FastifyRequest, reply: FastifyReply, err: EcrError): FastifyReply {
  if (!request.raw.complete) reply.header('Connection', 'close'); // the rest of a refused body is not read
  return reply
    .code(err.status)
    .header('x-amzn-ErrorType', err.type)
    .header('content-type', AMZ_JSON)
    .send(Buffer.from(JSON.stringify({ __type: err.type, message: err.message, ...err.extra })));
}
