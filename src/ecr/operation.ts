/**
 * What an ECR operation is given: the input as the JSON 1.1 body has it, and an OperationContext
 * (the registry, ECR's settings and services, the caller and its rights). Nothing here knows
 * HTTP: src/http/ecr/ builds the context and turns results and EcrErrors into responses.
 */
import type { EventOrigin } from '../events/events.js';
import type { Action, EcrConfig } from '../config/config.js';
import type { Identity } from '../auth/types.js';
import type { Registry } from '../registry/registry.js';
import type { EcrServices } from './services.js';

/** The signed-in caller of an ECR request: an ECR key pair acting as its user. */
export type EcrCaller = Extract<Identity, { kind: 'user' }> & { readonly via: 'ecr'; readonly keyId: string };

export interface OperationContext {
  readonly registry: Registry;
  readonly ecr: EcrConfig;
  readonly services: EcrServices;
  readonly caller: EcrCaller;
  /** The operation's name (CreateRepository, ...), for AccessDeniedException messages. */
  readonly operation: string;
  /** `host[:port]` at which clients reach /v2/: from http.host, else the request's Host (repositoryUri). */
  readonly registryHost: string;
  /** `scheme://host[:port]`: from http.host, else the request's (proxyEndpoint, download URLs). */
  readonly baseUrl: string;
  /** Whether blob reads may be answered with the store's own URL (storage.redirect; S3 only gives one). */
  readonly redirect: boolean;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
  /** The origin of the events of a change (undefined when notifications are off). */
  readonly origin?: EventOrigin | undefined;
  /** Throws AccessDeniedException unless the caller may take `action` on the repository. */
  require(repo: string, action: Action): void;
  /** Whether the caller may take `action` on the repository (to filter listings). */
  may(repo: string, action: Action): boolean;
  /** Throws AccessDeniedException unless the caller may change registry-wide settings. */
  requireRegistry(): void;
  /** arn:aws:ecr:<region>:<account>:repository/<name> */
  repositoryArn(name: string): string;
}

/** One ECR operation: input (the parsed JSON body, an object) → output (an object, serialised as JSON). */
export type Operation = (input: Readonly<Record<string, unknown>>, ctx: OperationContext) => Promise<object>;

/** Operations by name, as a file of src/ecr/operations/ exports them. */
export type OperationTable = Readonly<Record<string, Operation>>;
