import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { ConfigError, type Config } from './config/config.js';
import { openDatabase, type Db } from './index/database.js';
import { registerErrorHandling, sendError } from './http/errors.js';
import type { RouteContext } from './http/context.js';
import { v2Routes } from './http/v2-router.js';
import { Registry } from './registry/registry.js';
import type { BlobStore } from './storage/blob-store.js';
import { openStore } from './storage/open-store.js';

export interface BuildOptions {
  /** A logger configuration or instance for Fastify (default: pino at config.log.level). */
  logger?: FastifyServerOptions['logger'] | FastifyServerOptions['loggerInstance'];
  /** Use this store instead of the one the configuration names. */
  store?: BlobStore;
}

declare module 'fastify' {
  interface FastifyInstance {
    registry: Registry;
  }
}

/** Builds the registry's HTTP application. It never listens: main.ts does. */
export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const https = config.http.tls
    ? { cert: readTlsFile(config.http.tls.certificate, 'certificate'), key: readTlsFile(config.http.tls.key, 'key') }
    : undefined;
  const store: BlobStore = options.store ?? (await openStore(config));
  let db: Db;
  try {
    db = openDatabase(config.index.path);
  } catch (err) {
    await store.close?.();
    throw err;
  }
  const registry = new Registry(store, db);

  const logger =
    options.logger ?? ({ level: config.log.level, base: { ...config.log.fields } } as FastifyServerOptions['logger']);
  const app = Fastify({
    ...(isLoggerInstance(logger) ? { loggerInstance: logger } : { logger }),
    // The access log is one line per request, written when it ends (below).
    logController: new LogController({ disableRequestLogging: true }),
    ...(https ? { https } : {}),
    // During shutdown, new requests get a 503 in the OCI envelope (the hook below).
    return503OnClosing: false,
    // Errors Fastify raises before routing (a malformed URL, ...) get the envelope too.
    frameworkErrors: (err: Error & { statusCode?: number }, _request, reply) => {
      sendError(reply, err.statusCode ?? 400, 'UNSUPPORTED', err.message);
    },
    // Large layers take as long as they take, but a connection silent for
    // five minutes is dropped (so a stalled upload releases its session).
    requestTimeout: 0,
    connectionTimeout: 300_000,
    keepAliveTimeout: 75_000,
  } as FastifyServerOptions);
  app.decorate('registry', registry);

  // Request bodies are streams handled by the routes (blobs) or read with a limit (manifests).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  // Hooks take callbacks rather than promises: they run on every request.
  const headers = Object.entries(config.http.headers).map(([name, values]) => [name, values.join(', ')] as const);
  // Once shutdown starts, new requests get a 503 and each response closes its
  // connection, so that keep-alive clients do not hold the drain open until its timeout.
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', (_request, reply, done) => {
    reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    for (const [name, value] of headers) reply.header(name, value);
    if (!closing) return done();
    reply.header('Connection', 'close').header('Retry-After', '5');
    sendError(reply, 503, 'UNAVAILABLE', 'the registry is shutting down');
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('Connection', 'close');
    done(null, payload);
  });
  if (config.log.accessLog) {
    app.addHook('onResponse', (request, reply, done) => {
      const { method, url, ip } = request;
      request.log.info(
        { req: { method, url, remoteAddress: ip }, res: { statusCode: reply.statusCode }, responseTime: reply.elapsedTime },
        'request completed',
      );
      done();
    });
  }

  registerErrorHandling(app, config.http.publicUrl);
  const publicUrl = config.http.publicUrl;
  const ctx: RouteContext = { registry, config, url: (path) => (publicUrl ? publicUrl + path : path) };
  await app.register(v2Routes, ctx);

  app.get('/healthz', async (request, reply) => {
    try {
      await registry.healthy();
      return reply.send({ status: 'ok' });
    } catch (err) {
      request.log.error({ err }, 'health check failed');
      return reply.code(503).send({ status: 'unavailable' });
    }
  });

  if (config.ignoredKeys.length > 0) {
    app.log.warn({ keys: config.ignoredKeys }, 'configuration keys accepted for compatibility have no effect');
  }

  const purging = config.storage.uploadPurging;
  let purgeTimer: NodeJS.Timeout | undefined;
  let purgeRun: Promise<void> | undefined;
  if (purging.enabled) {
    const purge = async () => {
      if (purgeRun) return;
      purgeRun = purgeOnce().finally(() => (purgeRun = undefined));
    };
    const purgeOnce = async () => {
      try {
        const purged = await registry.uploads.purge(new Date(Date.now() - purging.ageMs), purging.dryRun);
        if (purged.length > 0) app.log.info({ count: purged.length, dryRun: purging.dryRun }, 'purged expired uploads');
      } catch (err) {
        app.log.error({ err }, 'upload purge failed');
      }
    };
    app.addHook('onReady', async () => {
      void purge();
      purgeTimer = setInterval(purge, purging.intervalMs);
      purgeTimer.unref();
    });
  }

  app.addHook('onClose', async () => {
    if (purgeTimer) clearInterval(purgeTimer);
    await purgeRun;
    await store.close?.();
    db.close();
  });
  return app;
}

function readTlsFile(path: string, what: 'certificate' | 'key'): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`cannot read http.tls.${what} ${path}: ${(err as Error).message}`);
  }
}

function isLoggerInstance(logger: unknown): logger is FastifyServerOptions['loggerInstance'] {
  return typeof logger === 'object' && logger !== null && typeof (logger as { info?: unknown }).info === 'function';
}
