/**
 * ECR's image operations over the registry's manifests: ListImages, DescribeImages,
 * BatchGetImage, PutImage, BatchDeleteImage and ListImageReferrers. Reads go through EcrImages
 * (the index); writes through registry.manifests, the same use cases as /v2/, so the
 * repository's rules (immutable tags, repositories that must exist) hold for both.
 */
import { Digest } from '../../oci/digest.js';
import { RegistryError } from '../../oci/errors.js';
import { isValidTag } from '../../oci/names.js';
import { ImmutableTagError, RepositoryNotFoundError } from '../../registry/repository-rules.js';
import type { Action } from '../../config/config.js';
import { EcrError, ecrErrors } from '../errors.js';
import type { ImageDetail, ImageId, TagStatus } from '../images.js';
import type { OperationContext, OperationTable } from '../operation.js';
import { MANIFEST_MAX_BYTES } from '../../config/config.js';
import { IMAGE_TAG, InputReader, MAX_RESULTS, REGISTRY_ID, REPOSITORY_NAME } from '../validate.js';

const TAG_STATUS = ['TAGGED', 'UNTAGGED', 'ANY'] as const;
/** Archival states: this registry archives nothing, so every image is ACTIVE. */
const ARTIFACT_STATUS = ['ACTIVE', 'ARCHIVED', 'ACTIVATING', 'ANY'] as const;
/** What ListImages and DescribeImages return without maxResults (ECR: up to 100). */
const DEFAULT_PAGE = 100;
/** ListImageReferrers: up to 20 without maxResults, 50 at most. */
const DEFAULT_REFERRERS = 20;
const MAX_REFERRERS = 50;
const IMAGE_IDS = { min: 1, max: 100 };
/** The model's ImageManifest: 1 to 4 MiB. */
const IMAGE_MANIFEST = { min: 1, max: 4 * 1024 * 1024 };
const NEXT_TOKEN_MAX = 2048;

type ImageFailureCode =
  | 'InvalidImageDigest'
  | 'InvalidImageTag'
  | 'ImageTagDoesNotMatchDigest'
  | 'ImageNotFound'
  | 'MissingDigestAndTag'
  | 'ImageReferencedByManifestList';

interface RequestedId {
  imageDigest?: string;
  imageTag?: string;
}

interface Failure {
  failureCode: ImageFailureCode;
  failureReason: string;
}

export const imageOperations: OperationTable = {
  async ListImages(input, ctx) {
    const v = new InputReader(input);
    const { repo, registryId } = target(v);
    const { status, none } = filterOf(v, 'filter', 'imageStatus');
    const maxResults = v.integer('maxResults', MAX_RESULTS);
    const nextToken = v.string('nextToken');
    v.done();
    await openRepository(ctx, repo, registryId, 'pull');
    const after = nextToken === undefined ? undefined : readToken(nextToken);
    if (none) return { imageIds: [] };
    const page = await ctx.services.images.listIds(repo, status, after && { digest: after.d, tag: after.t ?? '' }, maxResults ?? DEFAULT_PAGE);
    return { imageIds: page.items, ...(page.next ? { nextToken: writeToken({ d: page.next.digest, t: page.next.tag }) } : {}) };
  },

  async DescribeImages(input, ctx) {
    const v = new InputReader(input);
    const { repo, registryId } = target(v);
    const ids = imageIds(v, false);
    // With imageIds, the filter is ignored: the images asked for are described whatever their tags.
    const { status, none } = filterOf(v, 'filter', 'imageStatus');
    const maxResults = v.integer('maxResults', MAX_RESULTS);
    const nextToken = v.string('nextToken');
    v.done();
    if (ids && (maxResults !== undefined || nextToken !== undefined)) {
      throw ecrErrors.invalidParameter('Invalid parameter: maxResults and nextToken cannot be used when images are specified with imageIds');
    }
    await openRepository(ctx, repo, registryId, 'pull');
    if (ids) {
      const digests: string[] = [];
      for (const id of ids) {
        const found = await resolve(ctx, repo, id);
        if ('failureCode' in found) throw describeFailure(ctx, repo, id, found);
        if (!digests.includes(found.digest)) digests.push(found.digest);
      }
      const details = await ctx.services.images.describe(repo, digests);
      return { imageDetails: digests.flatMap((d) => (details.has(d) ? [detailOut(ctx, repo, details.get(d)!)] : [])) };
    }
    const after = nextToken === undefined ? undefined : readToken(nextToken);
    if (none) return { imageDetails: [] };
    const page = await ctx.services.images.describePage(repo, status, after?.d ?? '', maxResults ?? DEFAULT_PAGE);
    return { imageDetails: page.items.map((d) => detailOut(ctx, repo, d)), ...(page.next ? { nextToken: writeToken({ d: page.next }) } : {}) };
  },

  async BatchGetImage(input, ctx) {
    const v = new InputReader(input);
    const { repo, registryId } = target(v);
    const ids = imageIds(v, true);
    const accepted = v.strings('acceptedMediaTypes', { min: 1, max: 100 });
    v.done();
    await openRepository(ctx, repo, registryId, 'pull');
    const images: object[] = [];
    const failures: object[] = [];
    for (const id of ids ?? []) {
      const found = await resolve(ctx, repo, id);
      if ('failureCode' in found) {
        failures.push({ imageId: id, ...found });
        continue;
      }
      let manifest: { digest: string; mediaType: string; content: Buffer };
      try {
        // The registry's own choice, as for a /v2/ pull: the manifest itself when its type is
        // accepted, else the linux/amd64 image of an index when that one is.
        manifest = await ctx.registry.manifests.get(repo, { digest: Digest.parse(found.digest) }, accepted);
      } catch (err) {
        if (!(err instanceof RegistryError) || err.code !== 'MANIFEST_UNKNOWN') throw err;
        const row = await ctx.services.images.manifest(repo, found.digest);
        failures.push({
          imageId: id,
          ...(row
            ? // A code of the model's list (SDKs with fixed enums know no other), the reason saying why.
              failure('ImageNotFound', `The image's manifest media type ${row.mediaType} is not among the accepted media types`)
            : NOT_FOUND),
        });
        continue;
      }
      ctx.registry.pulls.record(repo, manifest.digest);
      images.push({
        registryId: ctx.ecr.accountId,
        repositoryName: repo,
        imageId: { imageDigest: manifest.digest, ...(id.imageTag !== undefined ? { imageTag: id.imageTag } : {}) },
        imageManifest: manifest.content.toString('utf8'),
        imageManifestMediaType: manifest.mediaType,
      });
    }
    return { images, failures };
  },

  async PutImage(input, ctx) {
    const v = new InputReader(input);
    const { repo, registryId } = target(v);
    const text = v.string('imageManifest', { required: true, ...IMAGE_MANIFEST })!;
    const mediaType = v.string('imageManifestMediaType');
    const tag = v.string('imageTag', IMAGE_TAG);
    const givenDigest = v.string('imageDigest');
    v.done();
    await openRepository(ctx, repo, registryId, 'push');
    if (tag !== undefined && !isValidTag(tag)) {
      throw ecrErrors.invalidParameter(`Invalid parameter at 'imageTag' failed to satisfy constraint: 'must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}'`);
    }
    const body = Buffer.from(text, 'utf8');
    // The limit /v2/ has, in bytes (the model's length counts characters).
    if (body.length > MANIFEST_MAX_BYTES) {
      throw ecrErrors.invalidParameter(`Invalid parameter at 'imageManifest' failed to satisfy constraint: 'the manifest is larger than ${MANIFEST_MAX_BYTES} bytes'`);
    }
    let digest = Digest.of(body);
    if (givenDigest !== undefined) {
      const given = Digest.tryParse(givenDigest);
      if (!given) throw ecrErrors.invalidParameter(`Invalid parameter at 'imageDigest' failed to satisfy constraint: 'must be a sha256 or sha512 digest'`);
      digest = Digest.of(body, given.algorithm);
      if (!digest.equals(given)) {
        throw new EcrError(
          'ImageDigestDoesNotMatchException',
          `The provided image digest '${givenDigest}' does not match the digest calculated for the manifest: '${digest}'`,
        );
      }
    }
    const d = digest.toString();
    const images = ctx.services.images;
    if ((await images.manifest(repo, d)) && (tag === undefined || (await images.tagDigest(repo, tag)) === d)) {
      throw new EcrError(
        'ImageAlreadyExistsException',
        `Image with digest '${d}' and tag '${tag ?? 'null'}' already exists in the repository with name '${repo}' in registry with id '${ctx.ecr.accountId}'`,
      );
    }
    try {
      // By digest (the one checked above, of whichever algorithm), the tag as an extra one.
      await ctx.registry.manifests.put(repo, { digest }, body, mediaType, tag !== undefined ? [tag] : [], ctx.origin);
    } catch (err) {
      throw pushFailure(ctx, repo, err);
    }
    const stored = await images.manifest(repo, d);
    return {
      image: {
        registryId: ctx.ecr.accountId,
        repositoryName: repo,
        imageId: { imageDigest: d, ...(tag !== undefined ? { imageTag: tag } : {}) },
        imageManifest: text,
        imageManifestMediaType: stored?.mediaType ?? mediaType,
      },
    };
  },

  async BatchDeleteImage(input, ctx) {
    const v = new InputReader(input);
    const { repo, registryId } = target(v);
    const ids = imageIds(v, true);
    v.done();
    await openRepository(ctx, repo, registryId, 'delete');
    const deleted: ImageId[] = [];
    const failures: object[] = [];
    for (const id of ids ?? []) {
      const result = await deleteImage(ctx, repo, id);
      if ('failureCode' in result) failures.push({ imageId: id, ...result });
      else deleted.push(...result);
    }
    return { imageIds: deleted, failures };
  },

  async ListImageReferrers(input, ctx) {
    const v = new InputReader(input);
    const { repo, registryId } = target(v);
    v.object('subjectId', true);
    const subject = v.string('subjectId.imageDigest', { required: true });
    v.object('filter');
    const artifactTypes = v.strings('filter.artifactTypes', { min: 0, max: 5 }, { min: 1, max: 255 });
    const artifactStatus = v.string('filter.artifactStatus', { enum: ARTIFACT_STATUS });
    const maxResults = v.integer('maxResults', { min: 1, max: MAX_REFERRERS });
    const nextToken = v.string('nextToken');
    v.done();
    await openRepository(ctx, repo, registryId, 'pull');
    if (!Digest.tryParse(subject!)) {
      throw ecrErrors.invalidParameter(`Invalid parameter at 'subjectId.imageDigest' failed to satisfy constraint: 'must be a sha256 or sha512 digest'`);
    }
    const after = nextToken === undefined ? undefined : readToken(nextToken);
    if (artifactStatus === 'ARCHIVED' || artifactStatus === 'ACTIVATING') return { referrers: [] };
    const page = await ctx.services.images.referrers(repo, subject!, after?.d ?? '', maxResults ?? DEFAULT_REFERRERS, artifactTypes);
    return {
      referrers: page.items.map((r) => ({ ...r, artifactStatus: 'ACTIVE' })),
      ...(page.next ? { nextToken: writeToken({ d: page.next }) } : {}),
    };
  },
};

/**
 * The repository an operation acts on, once the caller may take `action` on it (checked first,
 * so that a caller without the right learns nothing of what exists) and ECR knows it.
 */
export async function openRepository(ctx: OperationContext, repo: string, registryId: string | undefined, action: Action): Promise<void> {
  ctx.require(repo, action);
  if (registryId !== undefined && registryId !== ctx.ecr.accountId) throw ecrErrors.repositoryNotFound(repo, registryId);
  await ctx.services.repositories.require(repo);
}

/** repositoryName and registryId, the members every image and layer operation has. */
export function target(v: InputReader): { repo: string; registryId: string | undefined } {
  const repo = v.string('repositoryName', { required: true, ...REPOSITORY_NAME }) ?? '';
  return { repo, registryId: v.string('registryId', REGISTRY_ID) };
}

function filterOf(v: InputReader, path: string, statusMember: string): { status: TagStatus; none: boolean } {
  v.object(path);
  const status = (v.string(`${path}.tagStatus`, { enum: TAG_STATUS }) as TagStatus | undefined) ?? 'ANY';
  const imageStatus = v.string(`${path}.${statusMember}`, { enum: ARTIFACT_STATUS });
  return { status, none: imageStatus === 'ARCHIVED' || imageStatus === 'ACTIVATING' };
}

function imageIds(v: InputReader, required: boolean): RequestedId[] | undefined {
  return v.list('imageIds', { required, ...IMAGE_IDS })?.map((item, i) => {
    const at = `imageIds.${i + 1}.member`;
    const o = v.object(at, true, item) ?? {};
    const imageDigest = v.string(`${at}.imageDigest`, {}, o.imageDigest);
    const imageTag = v.string(`${at}.imageTag`, IMAGE_TAG, o.imageTag);
    return { ...(imageDigest !== undefined ? { imageDigest } : {}), ...(imageTag !== undefined ? { imageTag } : {}) };
  });
}

const NOT_FOUND = failure('ImageNotFound', 'Requested image not found');

function failure(failureCode: ImageFailureCode, failureReason: string): Failure {
  return { failureCode, failureReason };
}

/** The manifest an image id names: by digest (and then the tag, if given, must point at it), or by tag. */
async function resolve(ctx: OperationContext, repo: string, id: RequestedId): Promise<{ digest: string } | Failure> {
  if (id.imageDigest === undefined && id.imageTag === undefined) {
    return failure('MissingDigestAndTag', 'Invalid request parameters: both tag and digest cannot be null');
  }
  if (id.imageDigest !== undefined && !Digest.tryParse(id.imageDigest)) {
    return failure('InvalidImageDigest', "Invalid request parameters: image digest should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'");
  }
  if (id.imageTag !== undefined && !isValidTag(id.imageTag)) {
    return failure('InvalidImageTag', "Invalid request parameters: image tag should satisfy the regex '[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}'");
  }
  const images = ctx.services.images;
  const tagged = id.imageTag !== undefined ? await images.tagDigest(repo, id.imageTag) : undefined;
  if (id.imageDigest === undefined) return tagged === undefined ? NOT_FOUND : { digest: tagged };
  if (!(await images.manifest(repo, id.imageDigest))) return NOT_FOUND;
  if (id.imageTag !== undefined && tagged !== id.imageDigest) {
    return tagged === undefined ? NOT_FOUND : failure('ImageTagDoesNotMatchDigest', 'Invalid request parameters: the image tag does not point at the image digest');
  }
  return { digest: id.imageDigest };
}

/** DescribeImages fails as a whole for an id it cannot describe. */
function describeFailure(ctx: OperationContext, repo: string, id: RequestedId, f: Failure): EcrError {
  if (f.failureCode !== 'ImageNotFound' && f.failureCode !== 'ImageTagDoesNotMatchDigest') return ecrErrors.invalidParameter(f.failureReason);
  return new EcrError(
    'ImageNotFoundException',
    `The image with imageId {imageDigest:'${id.imageDigest ?? 'null'}', imageTag:'${id.imageTag ?? 'null'}'} does not exist within the repository with name '${repo}' in the registry with id '${ctx.ecr.accountId}'`,
  );
}

/**
 * By digest: the image and all its tags (refused while an index of the repository lists it).
 * By tag: the tag; and the image too when that was its last tag and no index lists it, as ECR
 * does. The tags and the indexes listing the image are checked under the repository's write
 * lock, in the index's transaction (deleteIf), so no tag or manifest write interleaves.
 */
async function deleteImage(ctx: OperationContext, repo: string, id: RequestedId): Promise<ImageId[] | Failure> {
  const found = await resolve(ctx, repo, id);
  if ('failureCode' in found) return found;
  const images = ctx.services.images;
  const digest = Digest.parse(found.digest);
  if (id.imageDigest !== undefined) {
    let tags: readonly string[] = [];
    let listedBy: readonly string[] = [];
    const done = await ctx.registry.manifests.deleteIf(repo, digest, (now, parents) => {
      tags = now;
      listedBy = parents;
      return parents.length === 0;
    }, ctx.origin);
    if (listedBy.length > 0) return failure('ImageReferencedByManifestList', `Requested image referenced by manifest list: [${listedBy.join(', ')}]`);
    if (!done) return NOT_FOUND;
    return tags.length === 0 ? [{ imageDigest: found.digest }] : tags.map((imageTag) => ({ imageDigest: found.digest, imageTag }));
  }
  try {
    await ctx.registry.manifests.delete(repo, { tag: id.imageTag! }, ctx.origin);
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN') return NOT_FOUND;
    throw err;
  }
  // Its last tag gone and no index listing it: the image goes too.
  await ctx.registry.manifests.deleteIf(repo, digest, (now, parents) => now.length === 0 && parents.length === 0, ctx.origin);
  return [{ imageDigest: found.digest, imageTag: id.imageTag! }];
}

/** What a refused manifest push answers in ECR's terms. */
function pushFailure(ctx: OperationContext, repo: string, err: unknown): unknown {
  const registryId = ctx.ecr.accountId;
  if (err instanceof ImmutableTagError) return new EcrError('ImageTagAlreadyExistsException', err.message);
  if (err instanceof RepositoryNotFoundError) return ecrErrors.repositoryNotFound(repo, registryId);
  if (!(err instanceof RegistryError)) return err;
  if (err.code === 'MANIFEST_BLOB_UNKNOWN') {
    const problems = Array.isArray(err.detail) ? (err.detail as Array<{ digest: string; reason: string }>) : [];
    const images = problems.filter((p) => p.reason.startsWith('manifest')).map((p) => p.digest);
    const layers = problems.filter((p) => p.reason.startsWith('blob')).map((p) => p.digest);
    if (images.length > 0) {
      return new EcrError(
        'ReferencedImagesNotFoundException',
        `Images with digests '[${images.join(', ')}]' referenced by the manifest list do not exist in the repository with name '${repo}' in the registry with id '${registryId}'`,
      );
    }
    if (layers.length > 0) {
      return new EcrError(
        'LayersNotFoundException',
        `Layers with digests '[${layers.join(', ')}]' required for pushing image into repository with name '${repo}' in the registry with id '${registryId}' do not exist`,
      );
    }
    const sizes = problems.map((p) => `${p.digest}: ${p.reason}`).join('; ');
    return ecrErrors.invalidParameter(`Invalid parameter at 'imageManifest' failed to satisfy constraint: 'the sizes of the layers do not match: ${sizes}'`);
  }
  if (err.code === 'MANIFEST_INVALID') return ecrErrors.invalidParameter(`Invalid parameter at 'imageManifest' failed to satisfy constraint: '${err.message}'`);
  return err;
}

function detailOut(ctx: OperationContext, repo: string, d: ImageDetail): object {
  return {
    registryId: ctx.ecr.accountId,
    repositoryName: repo,
    imageDigest: d.digest,
    ...(d.tags.length > 0 ? { imageTags: d.tags } : {}),
    imageSizeInBytes: d.sizeInBytes,
    imagePushedAt: d.pushedAt / 1000,
    imageManifestMediaType: d.manifestMediaType,
    ...(d.artifactMediaType !== undefined ? { artifactMediaType: d.artifactMediaType } : {}),
    ...(d.lastPulledAt !== undefined ? { lastRecordedPullTime: d.lastPulledAt / 1000 } : {}),
    ...(d.subject !== undefined ? { subjectManifestDigest: d.subject } : {}),
  };
}

/** A page's nextToken: where it ended, opaque to clients (base64url JSON). */
interface Cursor {
  d: string;
  t?: string;
}

function writeToken(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function readToken(token: string): Cursor {
  let value: unknown;
  if (token.length <= NEXT_TOKEN_MAX && /^[A-Za-z0-9_-]+$/.test(token)) {
    try {
      value = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    } catch {
      value = undefined;
    }
  }
  const c = value as Partial<Cursor> | undefined;
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.d !== 'string' ||
    c.d.includes('\u0000') ||
    (c.t !== undefined && (typeof c.t !== 'string' || c.t.includes('\u0000')))
  ) {
    throw ecrErrors.invalidParameter("Invalid parameter at 'nextToken' failed to satisfy constraint: 'it must be a token returned by a previous call'");
  }
  return { d: c.d, ...(c.t !== undefined ? { t: c.t } : {}) };
}
