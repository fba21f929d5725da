/**
 * Request rate limiting per client address (http.ratelimit), with @fastify/rate-limit. A rate
 * of r requests a second with a burst of b is a window of b/r seconds holding b requests; each
 * method may have its own rate and burst. Over the limit: 429 TOOMANYREQUESTS with Retry-After.
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RateLimitConfig } from '../config/config.js';
import { RegistryError } from '../oci/errors.js';

export async function registerRateLimit(app: FastifyInstance, config: RateLimitConfig): Promise<void> {
  const limitOf = (request: FastifyRequest) => config.methods[request.method] ?? config;
  await app.register(rateLimit, {
    global: true,
    hook: 'onRequest',
    keyGenerator: (request) => `${request.ip} ${config.methods[request.method] ? request.method : '*'}`,
    max: (request) => limitOf(request).burst,
    timeWindow: (request) => {
      const { rate, burst } = limitOf(request);
      return Math.max(1, Math.round((burst / rate) * 1000));
    },
    errorResponseBuilder: (_request, context) =>
      new RegistryError('TOOMANYREQUESTS', `rate limit exceeded; retry in ${context.after}`, { status: 429 }),
  });
}
