/**
 * What a registry with ECR's rules adds to a push: the repository must exist (or be created by
 * the push), and an immutable tag may not move. The registry's services call these hooks; the
 * rules themselves live in src/ecr/. Without ECR there are no rules (OPEN_RULES).
 */
import { RegistryError } from '../oci/errors.js';

/** A tag about to be written by a manifest push: where it points now (undefined: new) and where it will. */
export interface TagMove {
  readonly tag: string;
  readonly from: string | undefined;
  readonly to: string;
}

export interface RepositoryRules {
  /**
   * Called before a push writes anything to `repo`: an upload's start, a monolithic upload, a mount,
   * a manifest PUT (from /v2/ or from ECR's PutImage and layer API). Creates the repository when the
   * rules say a push creates it; throws RepositoryNotFoundError when it may not.
   */
  admitPush(repo: string): Promise<void>;
  /**
   * Called by a manifest push under the repository's write lock, before any tag moves; throws
   * ImmutableTagError for the first tag that may not move. A tag that already points at the
   * pushed digest is not a move and is never refused.
   */
  checkTagMoves(repo: string, moves: readonly TagMove[]): Promise<void>;
}

export const OPEN_RULES: RepositoryRules = Object.freeze({
  admitPush: async () => undefined,
  checkTagMoves: async () => undefined,
});

/** A push to a repository that does not exist, where pushes do not create repositories (404 NAME_UNKNOWN). */
export class RepositoryNotFoundError extends RegistryError {
  override name = 'RepositoryNotFoundError';
  constructor(
    readonly repository: string,
    readonly registryId: string,
  ) {
    super('NAME_UNKNOWN', `The repository with name '${repository}' does not exist in the registry with id '${registryId}'`, {
      detail: { name: repository },
    });
  }
}

/** A manifest push that would move an immutable tag (400 TAG_INVALID, ECR's code and message on /v2/). */
export class ImmutableTagError extends RegistryError {
  override name = 'ImmutableTagError';
  constructor(
    readonly repository: string,
    readonly tag: string,
  ) {
    super(
      'TAG_INVALID',
      `The image tag '${tag}' already exists in the '${repository}' repository and cannot be overwritten because the tag is immutable.`,
      { detail: { name: repository, tag } },
    );
  }
}
