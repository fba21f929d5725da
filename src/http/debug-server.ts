/**
 * The debug server (distribution's http.debug.addr): a second listener, off the public port,
 * that serves the Prometheus metrics. It has no routes of the registry and reads no credentials:
 * what it shows is for whoever may reach its address, which is why it is a separate one.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { RegistryMetrics } from '../events/metrics.js';

export function buildDebugServer(metrics: RegistryMetrics | undefined, path: string, log: FastifyBaseLogger): FastifyInstance {
  const debug = Fastify({ loggerInstance: log.child({ server: 'debug' }) });
  if (metrics) {
    debug.get(path, async (_request, reply) => {
      const { contentType, body } = await metrics.exposition();
      return reply.type(contentType).header('cache-control', 'no-store').send(body);
    });
  }
  return debug;
}
