import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Config } from './config/config.js';
import type { Index } from './index/contract.js';
import { openIndex } from './index/open-index.js';
import { registerErrorHandling, sendError } from './http/errors.js';
import type { RouteContext } from './http/context.js';
import { v2Routes } from './http/v2-router.js';
import { serverOptions } from './http/server-options.js';
import { registerGuard } from './http/auth/guard.js';
import { registerRateLimit } from './http/rate-limit.js';
import { tokenRoutes } from './http/auth/token-routes.js';
import { openAuth, type Auth } from './auth/setup.js';
import { openEcr, type Ecr } from './ecr/setup.js';
import { ecrRoutes } from './http/ecr/ecr-routes.js';
import { ecrDownloadRoutes } from './http/ecr/download-route.js';
import { Registry } from './registry/registry.js';
import type { BlobStore } from './storage/blob-store.js';
import { openStore } from './storage/open-store.js';

export interface BuildOptions {
  /** A logger configuration or instance for Fastify (default: pino at config.log.level). */
  logger?: FastifyServerOptions['logger'] | FastifyServerOptions['loggerInstance'];
  /** Use this store instead of the one the configuration names. */
  store?: BlobStore;
  /** Use this index instead of the one the configuration names (the app closes it). */
  index?: Index;
}

declare module 'fastify' {
  interface FastifyInstance {
    registry: Registry;
  }
}

/** Builds the registry's HTTP application. It never listens: main.ts does. */
export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  // First: an unreadable TLS file stops the start before anything is opened.
  const server = serverOptions(config);
  const store: BlobStore = options.store ?? (await openStore(config));
  let index: Index;
  try {
    index = options.index ?? (await openIndex(config.index));
  } catch (err) {
    await store.close?.();
    throw err;
  }
  const registry = new Registry(store, index);

  const logger =
    options.logger ?? ({ level: config.log.level, base: { ...config.log.fields } } as FastifyServerOptions['logger']);
  const app = Fastify({
    ...(isLoggerInstance(logger) ? { loggerInstance: logger } : { logger }),
    // The access log is one line per request, written when it ends (below).
    logController: new LogController({ disableRequestLogging: true }),
    ...server,
    // During shutdown, new requests get a 503 in the OCI envelope (the hook below).
    return503OnClosing: false,
    // Errors Fastify raises before routing (a malformed URL, ...) get the envelope too.
    frameworkErrors: (err: Error & { statusCode?: number }, _request, reply) => {
      sendError(reply, err.statusCode ?? 400, 'UNSUPPORTED', err.message);
    },
  } as FastifyServerOptions);
  app.decorate('registry', registry);
  let auth: Auth | undefined;
  try {
    auth = await openAuth(config, index, app.log);
  } catch (err) {
    await index.close();
    await store.close?.();
    throw err;
  }

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
      const { method, ip, identity } = request;
      // A signed download URL's token is a credential for as long as it lasts: never logged.
      const url = request.url.includes('token=') ? request.url.replace(/([?&]token=)[^&]*/g, '$1[redacted]') : request.url;
      const user = identity.kind === 'user' ? identity.name : undefined;
      request.log.info(
        { req: { method, url, remoteAddress: ip }, user, res: { statusCode: reply.statusCode }, responseTime: reply.elapsedTime },
        'request completed',
      );
      done();
    });
  }

  registerErrorHandling(app, config.http.publicUrl);
  const publicUrl = config.http.publicUrl;
  if (config.http.rateLimit) await registerRateLimit(app, config.http.rateLimit);
  registerGuard(app, auth, publicUrl);
  const ctx: RouteContext = { registry, config, url: (path) => (publicUrl ? publicUrl + path : path), access: routeAccess(auth) };
  await app.register(v2Routes, ctx);
  let ecr: Ecr | undefined;
  if (config.ecr && auth?.ecr) {
    ecr = openEcr(registry, config.ecr, auth.ecr.credentials);
    const surface = { registry, config, ecr: config.ecr, auth: auth as Auth & { ecr: NonNullable<Auth['ecr']> }, ...ecr };
    await app.register(ecrRoutes, surface);
    await app.register(ecrDownloadRoutes, { registry, credentials: auth.ecr.credentials });
  }
  if (auth?.tokenServer) await app.register(tokenRoutes, auth as Auth & { tokenServer: NonNullable<Auth['tokenServer']> });

  app.get('/healthz', { config: { need: { kind: 'public' } } }, async (request, reply) => {
    try {
      await registry.healthy();
      return reply.send({ status: 'ok' });
    } catch (err) {
      request.log.error({ err }, 'health check failed');
      return reply.code(503).send({ status: 'unavailable' });
    }
  });

  if (!auth && !isLoopback(config.http.host)) {
    app.log.warn(
      { host: config.http.host },
      'no auth section: anyone who reaches this address may push, overwrite and delete anything (see "Securing the registry" in the README)',
    );
  }
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
        // With several nodes, one purges at a time; the others skip this round.
        await index.locks.tryRun('job:upload-purge', async () => {
          const purged = await registry.uploads.purge(new Date(Date.now() - purging.ageMs), purging.dryRun);
          if (purged.length > 0) app.log.info({ count: purged.length, dryRun: purging.dryRun }, 'purged expired uploads');
        });
      } catch (err) {
        app.log.error({ err }, 'upload purge failed');
      }
    };
    app.addHook('onReady', async () => {
      void purge();
      purgeTimer = setInterval(() => void purge(), purging.intervalMs);
      purgeTimer.unref();
    });
  }

  let lifecycleTimer: NodeJS.Timeout | undefined;
  let lifecycleRun: Promise<void> | undefined;
  if (ecr && config.ecr) {
    const lifecycle = ecr.services.lifecycle;
    const runLifecycle = () => {
      if (lifecycleRun || config.storage.readOnly || !config.storage.deleteEnabled) return;
      // With several nodes, one applies the policies at a time; the others skip this round.
      lifecycleRun = index.locks
        .tryRun('job:lifecycle', () => lifecycle.run())
        .then((outcome) => {
          if (!outcome.ran) return;
          const { reports, failed } = outcome.value;
          const expired = reports.reduce((n, r) => n + r.expired.length, 0);
          if (expired > 0) app.log.info({ expired, repositories: reports.filter((r) => r.expired.length > 0).length }, 'lifecycle policies expired images');
          for (const f of failed) app.log.warn({ repository: f.repository, reason: f.reason }, 'lifecycle policy not applied');
        })
        .catch((err: unknown) => app.log.error({ err }, 'lifecycle run failed'))
        .finally(() => (lifecycleRun = undefined));
    };
    app.addHook('onReady', async () => {
      lifecycleTimer = setInterval(runLifecycle, config.ecr!.lifecycleIntervalMs);
      lifecycleTimer.unref();
    });
  }

  app.addHook('onClose', async () => {
    auth?.close();
    if (purgeTimer) clearInterval(purgeTimer);
    if (lifecycleTimer) clearInterval(lifecycleTimer);
    await purgeRun;
    await lifecycleRun;
    await registry.pulls.close();
    await store.close?.();
    await index.close();
  });
  return app;
}

/** What handlers may ask of the caller's rights: with auth off, everything is visible. */
function routeAccess(auth: Auth | undefined): RouteContext['access'] {
  if (!auth) return { mayPull: () => true, visible: () => undefined };
  const { authorizer } = auth;
  return {
    mayPull: (request, repo) => authorizer.mayPull(request.identity, repo),
    visible: (request) => {
      const identity = request.identity;
      return authorizer.seesWholeCatalog(identity) ? undefined : (repo) => authorizer.listsInCatalog(identity, repo);
    },
  };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function isLoggerInstance(logger: unknown): logger is FastifyServerOptions['loggerInstance'] {
  return typeof logger === 'object' && logger !== null && typeof (logger as { info?: unknown }).info === 'function';
}
