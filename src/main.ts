import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { redact, type Config } from './config/config.js';
import { openIndex } from './index/open-index.js';
import { reindex } from './registry/reindex.js';
import { openStore, storeLocation } from './storage/open-store.js';

/** Runs the registry until SIGTERM or SIGINT, then drains in-flight requests and closes the index. */
export async function serve(config: Config): Promise<FastifyInstance> {
  const app = await buildApp(config);
  app.log.debug({ config: redact(config) }, 'configuration');
  await app.listen({ host: config.http.host, port: config.http.port });
  const debug = config.http.debug;
  if (app.debugServer && debug) {
    try {
      await app.debugServer.listen({ host: debug.host, port: debug.port });
    } catch (err) {
      await app.close();
      throw err;
    }
  }

  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal, drainMs: config.http.drainTimeoutMs }, 'shutting down');
    const force = setTimeout(() => {
      app.log.warn('drain timeout passed; closing the remaining connections');
      app.server.closeAllConnections();
    }, config.http.drainTimeoutMs);
    force.unref();
    app.close().then(
      () => {
        clearTimeout(force);
        process.exitCode = 0;
      },
      (err: unknown) => {
        app.log.error({ err }, 'error while closing');
        process.exitCode = 1;
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  return app;
}

/** Rebuilds the index from the blob store (a folder or a bucket). The registry must not be running. */
export async function runReindex(config: Config): Promise<void> {
  const store = await openStore(config);
  let index;
  try {
    index = await openIndex(config.index);
  } catch (err) {
    await store.close?.();
    throw err;
  }
  try {
    const report = await reindex(store, index.registry);
    process.stdout.write(
      `reindexed ${storeLocation(config)}: ${report.repositories} repositories, ${report.manifests} manifests, ` +
        `${report.tags} tags, ${report.blobs} blobs, ${report.uploads} uploads in progress\n`,
    );
    for (const s of report.skipped) process.stdout.write(`skipped ${s.key}: ${s.reason}\n`);
  } finally {
    await index.close();
    await store.close?.();
  }
}
