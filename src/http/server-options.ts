import { readFileSync } from 'node:fs';
import type { ServerOptions as HttpServerOptions } from 'node:http';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { FastifyServerOptions } from 'fastify';
import { ConfigError, type Config } from '../config/config.js';
import { writeClientError } from './errors.js';

/** How long a client may take to send a request's headers (and, over TLS, its handshake). */
export const HEADERS_TIMEOUT_MS = 30_000;
/**
 * The largest request head accepted (431 beyond it): Node's default, stated.
 * Room for a bearer token of several KB and the usual headers.
 */
export const MAX_HEADER_SIZE = 16 * 1024;

export interface ServerOptionsOverrides {
  /** Instead of HEADERS_TIMEOUT_MS (tests use a short one). */
  headersTimeoutMs?: number;
}

/** What Fastify passes on to Node: `http` for a plain server, `https` (TLS and HTTP options) for TLS. */
export type RegistryServerOptions = Partial<FastifyServerOptions> & {
  http?: HttpServerOptions;
  https?: HttpsServerOptions;
};

/**
 * The options of the HTTP server that buildApp spreads into `Fastify({...})`.
 *
 * Bodies take as long as they take: there is no limit on a whole request
 * (a layer upload may stream for an hour), only on silence, which drops a
 * connection after five minutes without a byte. The request's head is
 * another matter: a client that trickles header bytes (slowloris) is cut
 * off HEADERS_TIMEOUT_MS after its request began, however slowly it sends,
 * and a TLS handshake gets as long.
 *
 * Fastify sets requestTimeout, keepAliveTimeout and the idle timeout on the
 * server itself; Node's other options (headersTimeout, maxHeaderSize, the
 * interval at which it checks them) go through `http`, or `https`, whose
 * object Node reads for both TLS and HTTP options.
 */
export function serverOptions(config: Config, overrides: ServerOptionsOverrides = {}): RegistryServerOptions {
  const headersTimeout = overrides.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  const node: HttpServerOptions = {
    requestTimeout: 0,
    headersTimeout,
    // Node looks for expired heads this often (30 s by default, which would double the bound).
    connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(headersTimeout / 4))),
    maxHeaderSize: MAX_HEADER_SIZE,
  };
  const tls = config.http.tls;
  return {
    ...(tls
      ? {
          https: {
            cert: readTlsFile(tls.certificate, 'certificate'),
            key: readTlsFile(tls.key, 'key'),
            ...(tls.clientCas.length > 0
              ? { ca: tls.clientCas.map((path) => readTlsFile(path, 'clientcas')), requestCert: true, rejectUnauthorized: true }
              : {}),
            minVersion: tls.minimumTls,
            handshakeTimeout: headersTimeout,
            ...node,
          },
        }
      : { http: node }),
    // Behind a proxy: the client's address (for the login throttle and rate limits) and scheme
    // (for the token realm) come from X-Forwarded-For/-Proto, when the proxy is one of these.
    ...(config.http.trustProxy.length > 0 ? { trustProxy: [...config.http.trustProxy] } : {}),
    // Large layers take as long as they take, but a connection silent for
    // five minutes is dropped (so a stalled upload releases its session).
    requestTimeout: 0,
    connectionTimeout: 300_000,
    keepAliveTimeout: 75_000,
    // A request Node refuses before Fastify sees it (a head too large or too slow) gets the envelope too.
    clientErrorHandler: writeClientError,
  };
}

function readTlsFile(path: string, what: 'certificate' | 'key' | 'clientcas'): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`cannot read http.tls.${what} ${path}: ${(err as Error).message}`);
  }
}
