import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../oci/errors.js';
import { assertName } from '../oci/names.js';
import { deleteBlob, getBlob } from './blob-routes.js';
import type { Handler, RouteContext } from './context.js';
import { catalog, listReferrers, listTags } from './listing-routes.js';
import { deleteManifest, getManifest, putManifest } from './manifest-routes.js';
import { cancelUpload, completeUpload, patchUpload, startUpload, uploadStatus } from './upload-routes.js';

type AnyHandler = Handler<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
type MethodTable = Partial<Record<string, AnyHandler>>;

interface Endpoint {
  /** Matches the path after /v2/; the first group is the repository name. */
  pattern: RegExp;
  params: (m: RegExpExecArray) => Record<string, string>;
  methods: MethodTable;
}

// Repository names contain slashes, so one wildcard route takes /v2/* and the
// path is matched here, from its end. Order matters: uploads before blobs.
const ENDPOINTS: Endpoint[] = [
  {
    pattern: /^(.+)\/blobs\/uploads\/?$/,
    params: (m) => ({ name: m[1]! }),
    methods: { POST: startUpload },
  },
  {
    pattern: /^(.+)\/blobs\/uploads\/([^/]+)$/,
    params: (m) => ({ name: m[1]!, id: m[2]! }),
    methods: { GET: uploadStatus, PATCH: patchUpload, PUT: completeUpload, DELETE: cancelUpload },
  },
  {
    pattern: /^(.+)\/blobs\/([^/]+)$/,
    params: (m) => ({ name: m[1]!, digest: m[2]! }),
    methods: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob },
  },
  {
    pattern: /^(.+)\/manifests\/([^/]+)$/,
    params: (m) => ({ name: m[1]!, reference: m[2]! }),
    methods: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest },
  },
  {
    pattern: /^(.+)\/tags\/list$/,
    params: (m) => ({ name: m[1]! }),
    methods: { GET: listTags },
  },
  {
    pattern: /^(.+)\/referrers\/([^/]+)$/,
    params: (m) => ({ name: m[1]!, digest: m[2]! }),
    methods: { GET: listReferrers },
  },
];

const CATALOG: MethodTable = { GET: catalog };

function dispatch(ctx: RouteContext) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const path = (request.params as { '*': string })['*'];
    if (path === '_catalog') return run(CATALOG, {}, request, reply);
    for (const endpoint of ENDPOINTS) {
      const m = endpoint.pattern.exec(path);
      if (!m) continue;
      const params = endpoint.params(m);
      return run(endpoint.methods, params, request, reply, () => assertName(params.name!));
    }
    throw new RegistryError('UNSUPPORTED', `no such endpoint: /v2/${path}`, { status: 404 });
  };

  async function run(
    methods: MethodTable,
    params: Record<string, string>,
    request: FastifyRequest,
    reply: FastifyReply,
    validate?: () => void,
  ): Promise<unknown> {
    const handler = methods[request.method];
    if (!handler) {
      reply.header('Allow', Object.keys(methods).join(', '));
      throw new RegistryError('UNSUPPORTED', `${request.method} is not supported here`, { status: 405 });
    }
    validate?.();
    return handler(ctx, params, request, reply);
  }
}

/** The OCI distribution API under /v2/. */
export async function v2Routes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  app.route({
    method: ['GET', 'HEAD'],
    url: '/v2/',
    handler: async (_request, reply) => reply.type('application/json').send('{}'),
  });
  app.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/v2/*',
    handler: dispatch(ctx),
  });
}
