import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/config.js';
import { RegistryError } from '../oci/errors.js';
import type { Registry } from '../registry/registry.js';
import type { EventOrigin } from '../events/events.js';
import type { PullThroughCache } from '../proxy/cache.js';

/** What every /v2/ handler is given besides the request and the reply. */
export interface RouteContext {
  registry: Registry;
  config: Config;
  /** A URL for a Location header: relative, or under http.host when it is set. */
  url(path: string): string;
  /** Who asked, from where, for the events of the change (undefined when notifications are off). */
  origin(request: FastifyRequest): EventOrigin | undefined;
  /** The pull-through cache, when an upstream is configured or ECR's rules may name one. */
  proxy?: PullThroughCache;
  /** What the caller may see, for handlers whose answer depends on it (decided in src/auth/). */
  access: {
    /** Whether the caller may pull from `repo` (a mount's source). */
    mayPull(request: FastifyRequest, repo: string): boolean;
    /** Whether the caller may push to `repo` (an archive import, whose repositories are known only from its body). */
    mayPush(request: FastifyRequest, repo: string): boolean;
    /** The repositories a listing may show the caller; undefined when it sees all of them. */
    visible(request: FastifyRequest): ((repo: string) => boolean) | undefined;
  };
}

export type Handler<P> = (ctx: RouteContext, params: P, request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

export function assertWritable(ctx: RouteContext): void {
  if (ctx.config.storage.readOnly) {
    throw new RegistryError('UNSUPPORTED', 'the registry is in read-only mode', { status: 405 });
  }
}

export function assertDeletable(ctx: RouteContext): void {
  assertWritable(ctx);
  if (!ctx.config.storage.deleteEnabled) {
    throw new RegistryError('UNSUPPORTED', 'deletes are disabled on this registry', { status: 405 });
  }
}

/**
 * The origin of a request's events, as distribution records it: the request (its id, the client's
 * address and port, the Host asked for, the method, the User-Agent), the user, and the registry's
 * URL as the client sees it (http.host when set).
 */
export function eventOrigin(request: FastifyRequest, publicUrl: string | undefined): EventOrigin {
  const identity = request.identity;
  const port = request.raw.socket?.remotePort;
  return {
    request: {
      id: request.id,
      addr: port !== undefined ? (request.ip.includes(':') ? `[${request.ip}]:${port}` : `${request.ip}:${port}`) : request.ip,
      host: request.headers.host ?? '',
      method: request.method,
      useragent: request.headers['user-agent'] ?? '',
    },
    actor: identity?.kind === 'user' ? { name: identity.name } : {},
    baseUrl: publicUrl ?? `${request.protocol}://${request.host}`,
  };
}

/** The registry's host as clients name it in image references: http.host's, else the request's. */
export function registryHost(ctx: RouteContext, request: FastifyRequest): string {
  const publicUrl = ctx.config.http.publicUrl;
  return publicUrl ? new URL(publicUrl).host : request.host;
}

/** Aborts when the client goes away, so that storage calls stop early. */
export function requestSignal(request: FastifyRequest): AbortSignal {
  const controller = new AbortController();
  request.raw.once('close', () => {
    if (!request.raw.complete) controller.abort();
  });
  return controller.signal;
}
