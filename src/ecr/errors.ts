/**
 * ECR's errors: an exception name (`__type`), a message, the status, and for a few exceptions
 * extra members (InvalidLayerPartException's `lastValidByteReceived`, ...). The HTTP surface
 * alone turns one into `{"__type": ..., "message": ..., ...extra}`.
 */
export class EcrError extends Error {
  override name = 'EcrError';
  constructor(
    /** The exception's name, e.g. RepositoryNotFoundException. */
    readonly type: string,
    message: string,
    readonly status = 400,
    /** Members the service model gives the exception besides `message`. */
    readonly extra: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}

/** The messages ECR itself answers, so that scripts matching on them keep working. */
export const ecrErrors = {
  repositoryNotFound: (name: string, registryId: string) =>
    new EcrError('RepositoryNotFoundException', `The repository with name '${name}' does not exist in the registry with id '${registryId}'`),
  repositoryAlreadyExists: (name: string, registryId: string) =>
    new EcrError('RepositoryAlreadyExistsException', `The repository with name '${name}' already exists in the registry with id '${registryId}'`),
  repositoryNotEmpty: (name: string, registryId: string) =>
    new EcrError(
      'RepositoryNotEmptyException',
      `The repository with name '${name}' in registry with id '${registryId}' cannot be deleted because it still contains images`,
    ),
  invalidParameter: (message: string) => new EcrError('InvalidParameterException', message),
  /** A value that breaks the service model's constraints, in AWS's words. */
  validation: (problems: readonly string[]) =>
    new EcrError(
      'ValidationException',
      `${problems.length} validation error${problems.length === 1 ? '' : 's'} detected: ${problems.join('; ')}`,
    ),
  accessDenied: (userArn: string, operation: string, resourceArn: string) =>
    new EcrError(
      'AccessDeniedException',
      `User: ${userArn} is not authorized to perform: ecr:${operation} on resource: ${resourceArn} because no identity-based policy allows the ecr:${operation} action`,
    ),
  server: () => new EcrError('ServerException', 'An internal error occurred; it was logged', 500),
};
