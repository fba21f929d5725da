/**
 * ECR's layer operations: BatchCheckLayerAvailability, InitiateLayerUpload, UploadLayerPart,
 * CompleteLayerUpload and GetDownloadUrlForLayer. They are the /v2/ upload sessions under
 * other names (registry.uploads, registry.blobs): a layer pushed here is pulled through /v2/,
 * and nothing is written twice.
 */
import { Digest } from '../../oci/digest.js';
import { RegistryError, UploadRangeError } from '../../oci/errors.js';
import { RepositoryNotFoundError } from '../../registry/repository-rules.js';
import { EcrError, ecrErrors } from '../errors.js';
import type { OperationContext, OperationTable } from '../operation.js';
import { InputReader } from '../validate.js';
import { openRepository, target } from './images.js';

/** The part size InitiateLayerUpload suggests (a part may be up to MAX_PART). */
export const PART_SIZE = 10 * 1024 * 1024;
/** The model's LayerPartBlob: at most 20 MiB, decoded. */
export const MAX_PART = 20 * 1024 * 1024;
/** How long a GetDownloadUrlForLayer URL of the registry's own works. */
export const DOWNLOAD_URL_TTL_MS = 10 * 60 * 1000;

const UPLOAD_ID = { pattern: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/ };
const LAYER_DIGEST = { pattern: /^[a-zA-Z0-9_+.-]+:[a-fA-F0-9]+$/ };
const PART_POSITION = { min: 0 };
/** The longest base64 text a part of MAX_PART bytes can have. */
const MAX_PART_BASE64 = Math.ceil(MAX_PART / 3) * 4;
/** Base64 characters, padding at the end only (the length is checked apart: a repeated group overflows the regex stack on long parts). */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export const layerOperations: OperationTable = {
  async BatchCheckLayerAvailability(input, ctx) {
    const v = new InputReader(input);
    const { repo, registryId } = target(v);
    const digests = v.strings('layerDigests', { required: true, min: 1, max: 100 }, { max: 1000 });
    v.done();
    await openRepository(ctx, repo, registryId, 'pull');
    const layers: object[] = [];
    const failures: object[] = [];
    for (const layerDigest of digests ?? []) {
      if (layerDigest === '') {
        failures.push({ layerDigest, failureCode: 'MissingLayerDigest', failureReason: 'The layer digest is missing' });
        continue;
      }
      if (!Digest.tryParse(layerDigest)) {
        failures.push({ layerDigest, failureCode: 'InvalidLayerDigest', failureReason: `Invalid layer digest: '${layerDigest}'` });
        continue;
      }
      const layerSize = await ctx.registry.index.linkedBlobSize(repo, layerDigest);
      layers.push(
        layerSize === undefined
          ? { layerDigest, layerAvailability: 'UNAVAILABLE' }
          : { layerDigest, layerAvailability: 'AVAILABLE', layerSize },
      );
    }
    return { layers, failures };
  },

  async InitiateLayerUpload(input, ctx) {
    const v = new InputReader(input);
    const { repo, registryId } = target(v);
    v.done();
    await openRepository(ctx, repo, registryId, 'push');
    try {
      const upload = await ctx.registry.uploads.start(repo, ctx.signal);
      return { uploadId: upload.id, partSize: PART_SIZE };
    } catch (err) {
      throw layerFailure(ctx, repo, '', err);
    }
  },

  async UploadLayerPart(input, ctx) {
    const v = new InputReader(input);
    const { repo, registryId } = target(v);
    const uploadId = v.string('uploadId', { required: true, ...UPLOAD_ID })!;
    const first = v.integer('partFirstByte', { required: true, ...PART_POSITION })!;
    const last = v.integer('partLastByte', { required: true, ...PART_POSITION })!;
    const blob = v.string('layerPartBlob', { required: true });
    if (blob !== undefined && blob.length > MAX_PART_BASE64) {
      v.fail('layerPartBlob', undefined, `Member must have length less than or equal to ${MAX_PART}`);
    }
    v.done();
    await openRepository(ctx, repo, registryId, 'push');
    const part = decodePart(blob!);
    if (part.length > MAX_PART) {
      throw ecrErrors.invalidParameter(`Invalid parameter at 'layerPartBlob' failed to satisfy constraint: 'Member must have length less than or equal to ${MAX_PART}'`);
    }
    if (part.length === 0 || last - first + 1 !== part.length) {
      const size = await uploadSize(ctx, repo, uploadId);
      throw invalidPart(ctx, repo, uploadId, size, `The part from byte ${first} to byte ${last} does not hold ${part.length} bytes`);
    }
    try {
      const upload = await ctx.registry.uploads.append(repo, uploadId, once(part), { range: { start: first, end: last }, length: part.length }, ctx.signal);
      return { registryId: ctx.ecr.accountId, repositoryName: repo, uploadId, lastByteReceived: upload.size - 1 };
    } catch (err) {
      if (err instanceof UploadRangeError) {
        // Parts are contiguous: each starts right after the bytes received so far.
        throw invalidPart(ctx, repo, uploadId, err.size, `The part must start at byte ${err.size}, after the bytes received so far, not at byte ${first}`);
      }
      throw layerFailure(ctx, repo, uploadId, err);
    }
  },

  async CompleteLayerUpload(input, ctx) {
    const v = new InputReader(input);
    const { repo, registryId } = target(v);
    const uploadId = v.string('uploadId', { required: true, ...UPLOAD_ID })!;
    const digests = v.strings('layerDigests', { required: true, min: 1, max: 100 }, LAYER_DIGEST);
    v.done();
    await openRepository(ctx, repo, registryId, 'push');
    if (digests!.length !== 1) throw ecrErrors.invalidParameter('Invalid parameter: an upload is one layer, so layerDigests must hold exactly one digest');
    const layerDigest = digests![0]!;
    const digest = Digest.tryParse(layerDigest);
    if (!digest) throw ecrErrors.invalidParameter(`Invalid parameter at 'layerDigests' failed to satisfy constraint: '${layerDigest} is not a sha256 or sha512 digest'`);
    const size = await uploadSize(ctx, repo, uploadId);
    if (size === 0) {
      throw new EcrError('EmptyUploadException', `The upload with id '${uploadId}' in the repository with name '${repo}' in the registry with id '${ctx.ecr.accountId}' has no layer parts`);
    }
    if ((await ctx.registry.index.linkedBlobSize(repo, layerDigest)) !== undefined) {
      await ctx.registry.uploads.cancel(repo, uploadId).catch(() => undefined); // its bytes are not needed
      throw new EcrError(
        'LayerAlreadyExistsException',
        `The layer with digest '${layerDigest}' already exists in the repository with name '${repo}' in the registry with id '${ctx.ecr.accountId}'`,
      );
    }
    try {
      await ctx.registry.uploads.complete(repo, uploadId, digest, undefined, {}, ctx.signal, ctx.origin);
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'DIGEST_INVALID') {
        throw new EcrError('InvalidLayerException', `The digest of the uploaded layer does not match the provided digest '${layerDigest}'`);
      }
      throw layerFailure(ctx, repo, uploadId, err);
    }
    return { registryId: ctx.ecr.accountId, repositoryName: repo, uploadId, layerDigest };
  },

  async GetDownloadUrlForLayer(input, ctx) {
    const v = new InputReader(input);
    const { repo, registryId } = target(v);
    const layerDigest = v.string('layerDigest', { required: true, ...LAYER_DIGEST })!;
    v.done();
    await openRepository(ctx, repo, registryId, 'pull');
    const digest = Digest.tryParse(layerDigest);
    if (!digest || (await ctx.registry.index.linkedBlobSize(repo, layerDigest)) === undefined) {
      throw new EcrError(
        'LayersNotFoundException',
        `The layer with digest '${layerDigest}' does not exist in the repository with name '${repo}' in the registry with id '${ctx.ecr.accountId}'`,
      );
    }
    // ECR gives URLs only for layers of an image: a layer uploaded but in no manifest is not served.
    if (!(await ctx.services.images.layerInImage(repo, layerDigest))) {
      throw new EcrError(
        'LayerInaccessibleException',
        `The layer with digest '${layerDigest}' is not associated with an image in the repository with name '${repo}'`,
      );
    }
    const direct = ctx.redirect ? await ctx.registry.blobs.directUrl(digest) : undefined;
    if (direct) return { downloadUrl: direct, layerDigest };
    const credential = ctx.services.credentials.find(ctx.caller.keyId);
    if (!credential) throw ecrErrors.server(); // the caller signed this request with it a moment ago
    const token = ctx.services.credentials.signDownload(credential, repo, layerDigest, Date.now() + DOWNLOAD_URL_TTL_MS);
    return { downloadUrl: `${ctx.baseUrl}/ecr/download/${repo}/${layerDigest}?token=${encodeURIComponent(token)}`, layerDigest };
  },
};


function decodePart(text: string): Buffer {
  if (text.length % 4 !== 0 || !BASE64.test(text)) throw new EcrError('SerializationException', "Unexpected value at 'layerPartBlob': expected base64-encoded bytes");
  return Buffer.from(text, 'base64');
}

async function* once(part: Buffer): AsyncIterable<Uint8Array> {
  yield part;
}

/** Bytes received so far by an upload of the repository (UploadNotFoundException if there is none). */
async function uploadSize(ctx: OperationContext, repo: string, uploadId: string): Promise<number> {
  try {
    return (await ctx.registry.uploads.status(repo, uploadId, ctx.signal)).size;
  } catch (err) {
    throw layerFailure(ctx, repo, uploadId, err);
  }
}

/** InvalidLayerPartException with the model's members; lastValidByteReceived is -1 before any byte. */
function invalidPart(ctx: OperationContext, repo: string, uploadId: string, received: number, message: string): EcrError {
  return new EcrError('InvalidLayerPartException', message, 400, {
    registryId: ctx.ecr.accountId,
    repositoryName: repo,
    uploadId,
    lastValidByteReceived: received - 1,
  });
}

function layerFailure(ctx: OperationContext, repo: string, uploadId: string, err: unknown): unknown {
  if (err instanceof RepositoryNotFoundError) return ecrErrors.repositoryNotFound(repo, ctx.ecr.accountId);
  if (!(err instanceof RegistryError)) return err;
  if (err.code === 'BLOB_UPLOAD_UNKNOWN') {
    return new EcrError(
      'UploadNotFoundException',
      `The upload with id '${uploadId}' does not exist in the repository with name '${repo}' in the registry with id '${ctx.ecr.accountId}'`,
    );
  }
  if (err.code === 'SIZE_INVALID') return new EcrError('LimitExceededException', err.message);
  return err;
}
