import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../oci/errors.js';
import { assertName, isValidName } from '../oci/names.js';
import type { Action, Need } from '../auth/types.js';
import { deleteBlob, getBlob } from './blob-routes.js';
import type { Handler, RouteContext } from './context.js';
import { catalog, listReferrers, listTags } from './listing-routes.js';
import { deleteManifest, getManifest, putManifest } from './manifest-routes.js';
import { cancelUpload, completeUpload, patchUpload, startUpload, uploadStatus } from './upload-routes.js';

type AnyHandler = Handler<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A method's handler and the rights it needs on the repository (checked by the auth hook before it runs). */
interface Method {
  handler: AnyHandler;
  needs: readonly Action[];
}
type MethodTable = Partial<Record<string, Method>>;

// GET/HEAD read; POST, PUT and PATCH write (and read: a push checks what is there); DELETE deletes.
const PULL: readonly Action[] = ['pull'];
const PUSH: readonly Action[] = ['pull', 'push'];
const DELETE: readonly Action[] = ['delete'];

interface Endpoint {
  /** The API area, as metrics and the audit log name it. */
  area: string;
  /** Matches the path after /v2/; the first group is the repository name. */
  pattern: RegExp;
  params: (m: RegExpExecArray) => Record<string, string>;
  methods: MethodTable;
}

// Repository names contain slashes, so one wildcard route takes /v2/* and the
// path is matched here, from its end. Order matters: uploads before blobs.
const ENDPOINTS: Endpoint[] = [
  {
    area: 'blob_upload',
    pattern: /^(.+)\/blobs\/uploads\/?$/,
    params: (m) => ({ name: m[1]! }),
    methods: { POST: { handler: startUpload, needs: PUSH } },
  },
  {
    area: 'blob_upload',
    pattern: /^(.+)\/blobs\/uploads\/([^/]+)$/,
    params: (m) => ({ name: m[1]!, id: m[2]! }),
    methods: {
      GET: { handler: uploadStatus, needs: PUSH }, // an upload in progress is the pusher's business
      PATCH: { handler: patchUpload, needs: PUSH },
      PUT: { handler: completeUpload, needs: PUSH },
      DELETE: { handler: cancelUpload, needs: PUSH }, // cancelling an upload deletes nothing stored
    },
  },
  {
    area: 'blob',
    pattern: /^(.+)\/blobs\/([^/]+)$/,
    params: (m) => ({ name: m[1]!, digest: m[2]! }),
    methods: { GET: { handler: getBlob, needs: PULL }, HEAD: { handler: getBlob, needs: PULL }, DELETE: { handler: deleteBlob, needs: DELETE } },
  },
  {
    area: 'manifest',
    pattern: /^(.+)\/manifests\/([^/]+)$/,
    params: (m) => ({ name: m[1]!, reference: m[2]! }),
    methods: {
      GET: { handler: getManifest, needs: PULL },
      HEAD: { handler: getManifest, needs: PULL },
      PUT: { handler: putManifest, needs: PUSH },
      DELETE: { handler: deleteManifest, needs: DELETE },
    },
  },
  {
    area: 'tags',
    pattern: /^(.+)\/tags\/list$/,
    params: (m) => ({ name: m[1]! }),
    methods: { GET: { handler: listTags, needs: PULL } },
  },
  {
    area: 'referrers',
    pattern: /^(.+)\/referrers\/([^/]+)$/,
    params: (m) => ({ name: m[1]!, digest: m[2]! }),
    methods: { GET: { handler: listReferrers, needs: PULL } },
  },
];

/** `_catalog` needs the catalog right; its listing is then filtered to what the caller may pull. */
const CATALOG: MethodTable = { GET: { handler: catalog, needs: [] } };

interface Match {
  area: string;
  methods: MethodTable;
  params: Record<string, string>;
  /** The repository, for the endpoints under one. */
  name?: string;
}

/** The endpoint a /v2/ path names, or undefined. Remembered per request (the auth hook asks first). */
const matched = new WeakMap<FastifyRequest, Match | undefined>();

function match(request: FastifyRequest): Match | undefined {
  if (matched.has(request)) return matched.get(request);
  const path = (request.params as { '*': string })['*'];
  let found: Match | undefined;
  if (path === '_catalog') found = { area: 'catalog', methods: CATALOG, params: {} };
  else {
    for (const endpoint of ENDPOINTS) {
      const m = endpoint.pattern.exec(path);
      if (!m) continue;
      const params = endpoint.params(m);
      found = { area: endpoint.area, methods: endpoint.methods, params, name: params.name! };
      break;
    }
  }
  matched.set(request, found);
  return found;
}

/**
 * The right a /v2/ request needs, from the route table. A path or method that names no
 * endpoint, or a malformed name, needs a signed-in caller: the handler then answers the error.
 */
export function v2Need(request: FastifyRequest): Need {
  const found = match(request);
  const method = found?.methods[request.method];
  if (!found || !method) return SIGNED_IN;
  if (found.methods === CATALOG) return { kind: 'catalog' };
  if (!isValidName(found.name!)) return SIGNED_IN;
  return { kind: 'repository', name: found.name!, actions: method.needs };
}

const SIGNED_IN: Need = { kind: 'authenticated' };

/**
 * What a /v2/ request is, for metrics and the audit log: its API area (`unknown` for a path that
 * names no endpoint), its path parameters and, when valid, the repository it names.
 */
export function v2Target(request: FastifyRequest): { area: string; repository?: string; params: Readonly<Record<string, string>> } {
  const found = match(request);
  if (!found) return { area: 'unknown', params: {} };
  const valid = found.name !== undefined && isValidName(found.name);
  return { area: found.area, params: found.params, ...(valid ? { repository: found.name } : {}) };
}

function dispatch(ctx: RouteContext) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const found = match(request);
    if (!found) {
      throw new RegistryError('UNSUPPORTED', `no such endpoint: /v2/${(request.params as { '*': string })['*']}`, { status: 404 });
    }
    const method = found.methods[request.method];
    if (!method) {
      reply.header('Allow', Object.keys(found.methods).join(', '));
      throw new RegistryError('UNSUPPORTED', `${request.method} is not supported here`, { status: 405 });
    }
    if (found.name !== undefined) assertName(found.name);
    return method.handler(ctx, found.params, request, reply);
  };
}

/** The OCI distribution API under /v2/. */
export async function v2Routes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  app.route({
    method: ['GET', 'HEAD'],
    url: '/v2/',
    config: { need: SIGNED_IN },
    handler: async (_request, reply) => reply.type('application/json').send('{}'),
  });
  app.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/v2/*',
    config: { need: v2Need },
    handler: dispatch(ctx),
  });
}
