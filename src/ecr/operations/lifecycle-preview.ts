/**
 * StartLifecyclePolicyPreview and GetLifecyclePolicyPreview. A preview is the plan a run would
 * carry out now (src/maintenance/lifecycle/service.ts): computed when it starts, kept for a day.
 */
import { LifecyclePolicyError } from '../../maintenance/lifecycle/policy.js';
import type { Expiration } from '../../maintenance/lifecycle/evaluate.js';
import { EcrError, ecrErrors } from '../errors.js';
import type { OperationTable } from '../operation.js';
import { repositoryErrors } from '../repositories.js';
import { openRepository } from './images.js';
import { decodeToken, encodeToken } from './repository-inputs.js';
import { IMAGE_TAG, InputReader, REGISTRY_ID, REPOSITORY_NAME } from '../validate.js';

const PREVIEW_PAGE = { min: 1, max: 100 };
const DEFAULT_PAGE = 100;

export const lifecyclePreviewOperations: OperationTable = {
  async StartLifecyclePolicyPreview(input, ctx) {
    const v = new InputReader(input);
    const registryId = v.string('registryId', REGISTRY_ID);
    const repositoryName = v.string('repositoryName', { ...REPOSITORY_NAME, required: true })!;
    const given = v.string('lifecyclePolicyText', { min: 100, max: 30720 });
    v.done();
    await openRepository(ctx, repositoryName, registryId, 'manage');
    const text = given ?? (await ctx.services.repositories.lifecyclePolicy(repositoryName))?.text;
    if (text === undefined) throw repositoryErrors.lifecyclePolicyNotFound(repositoryName, ctx.ecr.accountId);
    try {
      await ctx.services.lifecycle.startPreview(repositoryName, text);
    } catch (err) {
      if (err instanceof LifecyclePolicyError) throw ecrErrors.invalidParameter(err.message);
      throw err;
    }
    // Computed already; ECR answers IN_PROGRESS here and COMPLETE once GetLifecyclePolicyPreview sees it done.
    return { registryId: ctx.ecr.accountId, repositoryName, lifecyclePolicyText: text, status: 'IN_PROGRESS' };
  },

  async GetLifecyclePolicyPreview(input, ctx) {
    const v = new InputReader(input);
    const registryId = v.string('registryId', REGISTRY_ID);
    const repositoryName = v.string('repositoryName', { ...REPOSITORY_NAME, required: true })!;
    const ids = v.list('imageIds', { min: 1, max: 100 });
    const wanted = (ids ?? []).map((_, i) => ({
      digest: v.string(`imageIds.${i + 1}.member.imageDigest`, {}, (ids![i] as Record<string, unknown> | null)?.imageDigest),
      tag: v.string(`imageIds.${i + 1}.member.imageTag`, IMAGE_TAG, (ids![i] as Record<string, unknown> | null)?.imageTag),
    }));
    const nextToken = v.string('nextToken');
    const maxResults = v.integer('maxResults', PREVIEW_PAGE);
    const tagStatus = v.string('filter.tagStatus', { enum: ['TAGGED', 'UNTAGGED', 'ANY'] });
    v.done();
    if (ids && (nextToken !== undefined || maxResults !== undefined)) {
      throw ecrErrors.invalidParameter('nextToken and maxResults cannot be used together with imageIds');
    }
    await openRepository(ctx, repositoryName, registryId, 'pull');
    const preview = await ctx.services.lifecycle.preview(repositoryName);
    if (!preview) {
      throw new EcrError(
        'LifecyclePolicyPreviewNotFoundException',
        `There is no dry run for the repository with name '${repositoryName}' in the registry with id '${ctx.ecr.accountId}'`,
      );
    }
    let results = preview.expirations.filter((e) => matchesStatus(e, tagStatus));
    if (ids) results = results.filter((e) => wanted.some((w) => (w.digest === undefined || w.digest === e.digest) && (w.tag === undefined || e.tags.includes(w.tag))));
    const start = nextToken === undefined ? 0 : offsetOf(nextToken);
    const size = maxResults ?? DEFAULT_PAGE;
    const page = results.slice(start, start + size);
    const more = start + size < results.length;
    return {
      registryId: ctx.ecr.accountId,
      repositoryName,
      lifecyclePolicyText: preview.policyText,
      status: preview.status,
      previewResults: page.map((e) => ({
        ...(e.tags.length > 0 ? { imageTags: [...e.tags] } : {}),
        imageDigest: e.digest,
        imagePushedAt: e.pushedAt / 1000,
        action: { type: 'EXPIRE' },
        appliedRulePriority: e.rulePriority,
      })),
      summary: { expiringImageTotalCount: preview.expirations.length },
      ...(more ? { nextToken: offsetToken(start + size) } : {}),
    };
  },
};

function matchesStatus(e: Expiration, status: string | undefined): boolean {
  if (status === 'TAGGED') return e.tags.length > 0;
  if (status === 'UNTAGGED') return e.tags.length === 0;
  return true;
}

/** A page's position, as an opaque token (the shared token of the repository listings). */
function offsetToken(offset: number): string {
  return encodeToken(String(offset));
}

function offsetOf(token: string): number {
  const offset = Number(decodeToken(token));
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw ecrErrors.invalidParameter("Invalid parameter at 'nextToken': the token is not one this registry gave");
  }
  return offset;
}
