/**
 * What happens to each request once it ends: its metrics (when they are on) and, for a write, one
 * audit log line saying who did what to which repository from where, and how it ended. Both are
 * taken when the response closes, finished or not, so that a client that goes away is counted too.
 */
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RegistryMetrics } from '../events/metrics.js';
import { v2Target } from './v2-router.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** For a write outside /v2/ and the ECR API: the audit log's name for it (`archive.import`). */
    audit?: string;
  }
}

/** What a surface that serves several operations at one URL (the ECR API) says about a request. */
export interface RequestFacts {
  /** The operation, as the API names it (`PutImage`). */
  operation?: string;
  /** Whether the operation changes anything (it is then audited). */
  write?: boolean;
  repository?: string;
}

const facts = new WeakMap<FastifyRequest, RequestFacts>();

/** Records what the handler learned about the request, for its metrics and audit line. */
export function noteRequest(request: FastifyRequest, learned: RequestFacts): void {
  facts.set(request, { ...facts.get(request), ...learned });
}

/** The bytes of each connection counted so far: a request is charged what its connection moved since the last one ended. */
const counted = new WeakMap<Socket, { read: number; written: number }>();

export function registerObservation(app: FastifyInstance, metrics: RegistryMetrics | undefined): void {
  app.addHook('onRequest', (request, reply, done) => {
    const start = performance.now();
    const upload = metrics !== undefined && isUploadWrite(request);
    if (upload) metrics.uploadStarted();
    reply.raw.once('close', () => {
      if (upload) metrics.uploadEnded();
      const status = reply.raw.writableEnded ? reply.raw.statusCode : 0;
      const target = describe(request);
      if (metrics) {
        const socket = request.raw.socket;
        const before = counted.get(socket) ?? { read: 0, written: 0 };
        // (Requests injected in tests have no real connection: nothing to count.)
        const now = { read: finite(socket?.bytesRead), written: finite(socket?.bytesWritten) };
        if (socket) counted.set(socket, now);
        metrics.request({
          route: target.route,
          method: request.method,
          status,
          seconds: (performance.now() - start) / 1000,
          received: Math.max(0, now.read - before.read),
          sent: Math.max(0, now.written - before.written),
          ...(target.repository !== undefined ? { repository: target.repository } : {}),
        });
      }
      if (target.action !== undefined && !unauthenticatedProbe(request, status)) audit(request, target, status, reply.raw.getHeader('docker-content-digest'));
    });
    done();
  });
}

function finite(n: number | undefined): number {
  return typeof n === 'number' && Number.isFinite(n) ? n : 0;
}

interface Target {
  /** The metrics' route label: a small fixed set. */
  route: string;
  repository?: string;
  /** The audit log's name for a write; undefined for a read. */
  action?: string;
  reference?: string;
  digest?: string;
}

function describe(request: FastifyRequest): Target {
  const url = request.routeOptions.url;
  if (url === undefined) return { route: 'unmatched' };
  if (url === '/v2/*') return describeV2(request);
  const learned = facts.get(request);
  if (learned?.operation !== undefined) {
    return {
      route: `ecr:${learned.operation}`,
      ...(learned.repository !== undefined ? { repository: learned.repository } : {}),
      ...(learned.write ? { action: `ecr.${learned.operation}` } : {}),
    };
  }
  if (url === '/' && request.method === 'POST') return { route: 'ecr' };
  const action = request.routeOptions.config.audit;
  return { route: url, ...(learned?.repository !== undefined ? { repository: learned.repository } : {}), ...(action !== undefined && !READS.has(request.method) ? { action } : {}) };
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

function describeV2(request: FastifyRequest): Target {
  const { area, repository, params } = v2Target(request);
  const base = { route: area, ...(repository !== undefined ? { repository } : {}) };
  const query = request.query as Record<string, unknown>;
  const method = request.method;
  let action: string | undefined;
  if (area === 'manifest' && method === 'PUT') action = 'manifest.push';
  else if (area === 'manifest' && method === 'DELETE') action = params.reference?.includes(':') ? 'manifest.delete' : 'tag.delete';
  else if (area === 'blob' && method === 'DELETE') action = 'blob.delete';
  else if (area === 'blob_upload' && method === 'PUT') action = 'blob.push';
  else if (area === 'blob_upload' && method === 'DELETE') action = 'upload.cancel';
  else if (area === 'blob_upload' && method === 'POST') {
    action = query.mount !== undefined ? 'blob.mount' : query.digest !== undefined ? 'blob.push' : 'upload.start';
  }
  if (action === undefined) return base;
  const reference = area === 'manifest' ? params.reference : undefined;
  const digest = area === 'blob' ? params.digest : typeof query.digest === 'string' ? query.digest : undefined;
  return { ...base, action, ...(reference !== undefined ? { reference } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** POST, PATCH and PUT of an upload: requests that carry blob bytes in. */
function isUploadWrite(request: FastifyRequest): boolean {
  if (request.method !== 'POST' && request.method !== 'PATCH' && request.method !== 'PUT') return false;
  return request.routeOptions.url === '/v2/*' && v2Target(request).area === 'blob_upload';
}

/**
 * A client's first, credential-less attempt, answered with the challenge: every docker push
 * begins so. Not audited; a login that fails is (by the guard).
 */
function unauthenticatedProbe(request: FastifyRequest, status: number): boolean {
  return status === 401 && request.headers.authorization === undefined && request.identity?.kind !== 'user';
}

function audit(request: FastifyRequest, target: Target, status: number, contentDigest: unknown): void {
  const identity = request.identity;
  const digest = target.digest ?? (typeof contentDigest === 'string' ? contentDigest : undefined);
  request.log.info(
    {
      audit: {
        action: target.action,
        user: identity?.kind === 'user' ? identity.name : 'anonymous',
        ...(identity?.kind === 'user' && identity.keyId !== undefined && identity.via === 'key' ? { key: identity.keyId } : {}),
        addr: request.ip,
        ...(target.repository !== undefined ? { repository: target.repository } : {}),
        ...(target.reference !== undefined ? { reference: target.reference } : {}),
        ...(digest !== undefined ? { digest } : {}),
        status,
      },
    },
    'audit',
  );
}
