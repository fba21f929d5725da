/**
 * GetAuthorizationToken: a password for user `AWS` on /v2/ (docker login), valid 12 hours,
 * issued to the key pair that signed the request and acting as its user.
 */
import { ecrErrors } from '../errors.js';
import type { OperationTable } from '../operation.js';
import { InputReader, REGISTRY_ID } from '../validate.js';

export const authorizationOperations: OperationTable = {
  async GetAuthorizationToken(input, ctx) {
    const v = new InputReader(input);
    const ids = v.strings('registryIds', { min: 1, max: 10 }, REGISTRY_ID);
    v.done();
    const credential = ctx.services.credentials.find(ctx.caller.keyId);
    if (!credential) throw ecrErrors.server(); // the signature was just verified with it
    const { password, expiresAt } = ctx.services.credentials.issueLoginPassword(credential);
    const data = {
      authorizationToken: Buffer.from(`AWS:${password}`).toString('base64'),
      expiresAt: expiresAt / 1000,
      proxyEndpoint: ctx.baseUrl,
    };
    // One entry per registry asked for, as ECR answers; every id is this registry's.
    for (const id of ids ?? []) {
      if (id !== ctx.ecr.accountId) throw ecrErrors.invalidParameter(`The registry with id '${id}' is not this registry ('${ctx.ecr.accountId}')`);
    }
    return { authorizationData: (ids ?? [ctx.ecr.accountId]).map(() => data) };
  },
};
