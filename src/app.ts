import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Index } from './index/contract.js';
import { openIndex } from './index/open-index.js';
import { registerErrorHandling, sendError } from './http/errors.js';
import { eventOrigin, type RouteContext } from './http/context.js';
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
import { describeGcReport } from './gc-command.js';
import { GarbageCollector } from './maintenance/gc/collector.js';
import { ScheduledJob } from './maintenance/jobs.js';
import type { LifecycleService } from './maintenance/lifecycle/service.js';
import { openRetention } from './maintenance/retention.js';
import { RegistryMetrics } from './events/metrics.js';
import { instrumentIndex, instrumentStore } from './events/instrument.js';
import { registerObservation } from './http/observe.js';
import { buildDebugServer } from './http/debug-server.js';
import { uiApiRoutes } from './http/ui/ui-api.js';
import { uiStaticRoutes } from './http/ui/ui-static.js';
import { Notifier } from './events/notifier.js';
import { archiveRoutes } from './http/api/archive-routes.js';
import { hostname } from 'node:os';
import { DEFAULT_PROXY, type Config } from './config/config.js';
import { PullThroughCache, probeUpstream } from './proxy/cache.js';
import { guardPushes } from './proxy/push-guard.js';

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
    /** The background jobs (tests run them with runNow). */
    jobs: ScheduledJob[];
    /** The metrics, when http.debug.prometheus is on. */
    metrics: RegistryMetrics | undefined;
    /** The notifier, when notifications.endpoints has an enabled endpoint. */
    notifier: Notifier | undefined;
    /** The debug server (http.debug.addr), when configured: main.ts listens on it, the app closes it. */
    debugServer: FastifyInstance | undefined;
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
  const prometheus = config.http.debug?.prometheus;
  const metrics = prometheus
    ? new RegistryMetrics({ repositoryLabels: prometheus.repositoryLabels, storageBackend: config.storage.s3 ? 's3' : 'filesystem', indexDriver: index.driver })
    : undefined;
  const registry = metrics ? new Registry(instrumentStore(store, metrics), instrumentIndex(index, metrics)) : new Registry(store, index);

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
  app.decorate('metrics', metrics);
  let auth: Auth | undefined;
  try {
    auth = await openAuth(config, index, app.log);
  } catch (err) {
    await index.close();
    await store.close?.();
    throw err;
  }
  metrics?.watch({
    caches: [
      { name: 'tags', stats: () => registry.manifests.tagLists.stats },
      ...(auth?.users ? [{ name: 'passwords', stats: () => auth.users!.cacheStats }] : []),
    ],
    ...(auth ? { lockouts: () => auth.throttle.lockouts } : {}),
    storageRetries: () => store.retries?.(),
  });
  // Events go to the outbox only when an endpoint listens.
  const notifier = config.notifications
    ? new Notifier(registry.database.outbox, index.locks, config.notifications, app.log, metrics, `${hostname()}:${config.http.port}`)
    : undefined;
  registry.events = notifier;
  app.decorate('notifier', notifier);
  const debugServer = config.http.debug ? buildDebugServer(metrics, prometheus?.path ?? '/metrics', app.log) : undefined;
  app.decorate('debugServer', debugServer);

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
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    for (const [name, value] of headers) reply.header(name, value);
    // /readyz answers a drain itself, in its own terms.
    if (!closing || request.routeOptions.url === '/readyz') return done();
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

  registerObservation(app, metrics);
  registerErrorHandling(app, config.http.publicUrl);
  const publicUrl = config.http.publicUrl;
  if (config.http.rateLimit) await registerRateLimit(app, config.http.rateLimit);
  registerGuard(app, auth, publicUrl);
  const ctx: RouteContext = {
    registry,
    config,
    url: (path) => (publicUrl ? publicUrl + path : path),
    origin: (request) => (registry.events ? eventOrigin(request, publicUrl) : undefined),
    access: routeAccess(auth),
  };
  // ECR's room first: its push rules are installed before the cache's refusal wraps them.
  // The pull-through cache: upstreams from the configuration, and ECR's rules when the ECR API is on.
  const proxyConfig = config.proxy ?? (config.ecr && auth?.ecr ? DEFAULT_PROXY : undefined);
  const ecr: Ecr | undefined =
    config.ecr && auth?.ecr
      ? openEcr(registry, config.ecr, auth.ecr.credentials, { proxy: proxyConfig ?? DEFAULT_PROXY, probe: (upstream) => probeUpstream(upstream, proxyConfig ?? DEFAULT_PROXY) })
      : undefined;
  if (proxyConfig) {
    const rules = ecr?.services.pullThroughRules;
    const cache = new PullThroughCache({ registry, config: proxyConfig, ...(rules ? { ecr: rules } : {}), ...(metrics ? { counters: metrics } : {}), log: app.log, readOnly: config.storage.readOnly });
    if (rules) rules.onChange = () => cache.rulesChanged();
    ctx.proxy = cache;
    // Pushes to what the cache serves are refused, however they come (/v2/, ECR's API, imports).
    registry.rules = guardPushes(registry.rules, (repo) => cache.proxies(repo));
    app.addHook('onClose', async () => cache.close());
  }
  await app.register(v2Routes, ctx);
  if (ecr && config.ecr && auth?.ecr) {
    const surface = { registry, config, ecr: config.ecr, auth: auth as Auth & { ecr: NonNullable<Auth['ecr']> }, ...ecr };
    await app.register(ecrRoutes, surface);
    await app.register(ecrDownloadRoutes, { registry, credentials: auth.ecr.credentials });
  }
  await app.register(archiveRoutes, { ctx });
  if (config.ui.enabled) {
    await app.register(uiApiRoutes, { ctx, auth });
    await app.register(uiStaticRoutes);
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

  // For load balancers: ready to take requests (the index and the store answer, and no drain has begun).
  app.get('/readyz', { config: { need: { kind: 'public' } } }, async (request, reply) => {
    if (closing) return reply.code(503).header('Retry-After', '5').send({ status: 'draining' });
    const [index, store] = await Promise.all([failure(() => registry.index.ping()), failure(() => registry.store.stat('health-check'))]);
    if (index === undefined && store === undefined) return reply.send({ status: 'ready', index: 'ok', store: 'ok' });
    request.log.warn({ index, store }, 'readiness check failed');
    const state = (problem: string | undefined) => (problem === undefined ? 'ok' : 'unreachable');
    return reply.code(503).send({ status: 'unavailable', index: state(index), store: state(store) });
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

  const jobs: ScheduledJob[] = [];
  const log = app.log;
  /** A job's run, its failures counted in the metrics (the job itself logs them). */
  const counted =
    (job: string, run: (lost: AbortSignal) => Promise<void>) =>
    async (lost: AbortSignal): Promise<void> => {
      try {
        await run(lost);
      } catch (err) {
        metrics?.jobFailed(job);
        throw err;
      }
    };
  const purging = config.storage.uploadPurging;
  if (purging.enabled) {
    const run = async () => {
      const purged = await registry.uploads.purge(new Date(Date.now() - purging.ageMs), purging.dryRun);
      if (purged.length > 0) log.info({ count: purged.length, dryRun: purging.dryRun }, 'purged expired uploads');
    };
    jobs.push(new ScheduledJob(index.locks, 'upload-purge', purging.intervalMs, counted('upload-purge', run), log));
  }
  const writable = !config.storage.readOnly && config.storage.deleteEnabled;
  if (ecr && config.ecr && writable) {
    const lifecycle = ecr.services.lifecycle;
    const run = async () => {
      const started = performance.now();
      const { expired, dryRun } = logLifecycle(log, 'lifecycle policies', await lifecycle.run());
      metrics?.lifecycleRun('lifecycle', expired, dryRun, (performance.now() - started) / 1000);
    };
    jobs.push(new ScheduledJob(index.locks, 'lifecycle', config.ecr.lifecycleIntervalMs, counted('lifecycle', run), log));
  }
  if (config.retention && writable) {
    const retention = openRetention(registry, config.retention);
    const dryRun = config.retention.dryRun;
    const run = async () => {
      const started = performance.now();
      const { expired } = logLifecycle(log, 'retention policies', await retention.run({ dryRun }));
      metrics?.lifecycleRun('retention', expired, dryRun, (performance.now() - started) / 1000);
    };
    jobs.push(new ScheduledJob(index.locks, 'retention', config.retention.intervalMs, counted('retention', run), log));
  }
  const gc = config.storage.gc;
  if (gc.enabled && !config.storage.readOnly) {
    const collector = new GarbageCollector(registry);
    const run = async (lost: AbortSignal) => {
      const report = await collector.run({ delayMs: gc.delayMs, dryRun: gc.dryRun, deleteUntagged: gc.deleteUntagged, signal: lost });
      metrics?.gcRun({ ...report, seconds: report.durationMs / 1000 });
      const message = `garbage collection: ${describeGcReport(report)}`;
      if (report.failed > 0) log.warn(report, `${message}; the store kept ${report.failed} blob(s)`);
      else if (report.manifests + report.blobs > 0 || report.dryRun) log.info(report, message);
      else log.debug(report, message);
    };
    jobs.push(new ScheduledJob(index.locks, 'gc', gc.intervalMs, counted('gc', run), log));
  }
  app.decorate('jobs', jobs);
  app.addHook('onReady', async () => {
    await notifier?.start();
    for (const job of jobs) job.start({ now: job.name === 'upload-purge' });
  });

  app.addHook('onClose', async () => {
    auth?.close();
    await debugServer?.close();
    await Promise.all(jobs.map((job) => job.stop()));
    await notifier?.close();
    await registry.pulls.close();
    await store.close?.();
    await index.close();
  });
  return app;
}

/** What went wrong with a probe, or undefined when it answered. */
async function failure(probe: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await probe();
    return undefined;
  } catch (err) {
    return (err as Error)?.message ?? String(err);
  }
}

/** Logs what a lifecycle or retention run expired, and the policies it could not apply. */
function logLifecycle(
  log: FastifyBaseLogger,
  what: string,
  outcome: Awaited<ReturnType<LifecycleService['run']>>,
): { expired: number; dryRun: boolean } {
  const { reports, failed } = outcome;
  const expired = reports.reduce((n, r) => n + r.expired.length, 0);
  const dryRun = reports.some((r) => r.dryRun);
  const repositories = reports.filter((r) => r.expired.length > 0).length;
  if (expired > 0) log.info({ expired, dryRun, repositories }, `${what} ${dryRun ? 'would expire' : 'expired'} images`);
  for (const f of failed) log.warn({ repository: f.repository, reason: f.reason }, `${what}: policy not applied`);
  return { expired, dryRun };
}

/** What handlers may ask of the caller's rights: with auth off, everything is visible. */
function routeAccess(auth: Auth | undefined): RouteContext['access'] {
  if (!auth) return { mayPull: () => true, mayPush: () => true, visible: () => undefined };
  const { authorizer } = auth;
  return {
    mayPull: (request, repo) => authorizer.mayPull(request.identity, repo),
    mayPush: (request, repo) => authorizer.actions(request.identity, repo).has('push'),
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
