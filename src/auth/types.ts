/**
 * The vocabulary of src/auth/: who is asking (an Identity), what a request needs (a Need),
 * and the grants that tokens and access keys carry. Pure types; nothing here knows HTTP.
 */
import type { Action } from '../config/config.js';

export type { Action };
export const ACTIONS: readonly Action[] = ['pull', 'push', 'delete', 'manage'];

/**
 * One resource scope as Docker's token authentication writes it: `repository:<name>:<actions>`
 * or `registry:catalog:*`. In a token's `access` claim the same shape is `{type, name, actions}`.
 */
export interface ResourceScope {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

/** A repository pattern (`*` within a segment, `**` across segments) with the actions it allows. */
export interface ScopeGrant {
  readonly type: 'repository' | 'registry';
  /** For `repository`: a pattern; for `registry`: `catalog`. */
  readonly pattern: string;
  readonly actions: readonly string[];
}

/** What a route needs before its handler runs. */
export type Need =
  /** Anyone, signed in or not (health checks, the token endpoint, the JWKS). */
  | { readonly kind: 'public' }
  /** Any signed-in caller; anonymous callers too when auth is off (GET /v2/). */
  | { readonly kind: 'authenticated' }
  /** Actions on one repository. */
  | { readonly kind: 'repository'; readonly name: string; readonly actions: readonly Action[] }
  /** The catalog (`registry:catalog:*`); the listing is then filtered per repository. */
  | { readonly kind: 'catalog' }
  /**
   * Signed with SigV4 (or a token of the surface's own) and verified by the surface serving it
   * (the ECR API, its download URLs): the guard reads no Authorization header for it.
   */
  | { readonly kind: 'signed' };

/** Who the caller is, once its credentials were checked. */
export type Identity =
  /** No credentials, or (with `tokenAccess`) a token issued to nobody in particular. */
  | { readonly kind: 'anonymous'; readonly tokenAccess?: readonly ResourceScope[] }
  | {
      readonly kind: 'user';
      readonly name: string;
      /**
       * How the caller proved it: a password from htpasswd, an access key, a bearer token, or an
       * ECR key pair (a SigV4 signature, or the password GetAuthorizationToken gave).
       */
      readonly via: 'password' | 'key' | 'token' | 'ecr';
      /** With `via: 'key'`: the key's id and the scopes it is limited to. With `via: 'ecr'`: the access key id. */
      readonly keyId?: string;
      readonly keyScopes?: readonly ScopeGrant[];
      /** With `via: 'token'`: the token's `access` claim, which bounds what the request may do. */
      readonly tokenAccess?: readonly ResourceScope[];
      /** With `via: 'token'`: whether the token came from an external issuer. */
      readonly external?: boolean;
    };

export const ANONYMOUS: Identity = Object.freeze({ kind: 'anonymous' });
