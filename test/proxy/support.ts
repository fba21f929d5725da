/**
 * An upstream for the pull-through cache's tests: one of our registries listening on loopback,
 * behind the fault proxy (which counts its requests and can answer 429/503 or reset them, as a
 * failing upstream would), and a registry that mirrors it.
 */
import { rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { startFaultProxy, type FaultProxy, type ProxiedRequest } from '../support/fault-proxy.js';
import { DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, makeImage, putManifest, startRegistry, tempDir, type TestRegistry } from '../helpers.js';

export interface TestUpstream {
  registry: TestRegistry;
  proxy: FaultProxy;
  /** The URL the cache is given: the fault proxy's. */
  url: string;
  /** The requests of `method` whose path matches, since `since` (an index into proxy.requests). */
  count(method: string, path: RegExp, since?: number): number;
  /** An index into the requests, to count from. */
  mark(): number;
  /** Every request fails as if the upstream were down (connections reset). */
  down(): void;
  /** Every request is answered with `status` (429, 503, ...). */
  failWith(status: number): void;
  /** Back to normal. */
  up(): void;
  close(): Promise<void>;
}

export async function startUpstream(overrides: ConfigFile = {}): Promise<TestUpstream> {
  const registry = await startRegistry(overrides);
  await registry.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (registry.app.server.address() as AddressInfo).port;
  const proxy = await startFaultProxy(`http://127.0.0.1:${port}`);
  const all = () => true;
  return {
    registry,
    proxy,
    url: proxy.url,
    count: (method, path, since = 0) => proxy.requests.slice(since).filter((r: ProxiedRequest) => r.method === method && path.test(r.path)).length,
    mark: () => proxy.requests.length,
    down: () => {
      proxy.clear();
      proxy.inject({ match: all, fault: { kind: 'reset' } });
    },
    failWith: (status) => {
      proxy.clear();
      proxy.inject({ match: all, fault: { kind: 'status', status, code: 'SlowDown' } });
    },
    up: () => proxy.clear(),
    close: async () => {
      await proxy.close();
      await registry.destroy();
    },
  };
}

export interface LogLine {
  msg: string;
  level: number;
  [field: string]: unknown;
}

/** A registry (a mirror) whose log lines are kept, raw and parsed. */
export interface TestMirror {
  app: FastifyInstance;
  lines: LogLine[];
  /** Every log line as written, to look for what must never be there. */
  text(): string;
  close(): Promise<void>;
}

export async function startMirror(overrides: ConfigFile): Promise<TestMirror> {
  const dir = await tempDir('ocireg-mirror-');
  const raw: string[] = [];
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split('\n')) {
        if (!text) continue;
        raw.push(text);
        lines.push(JSON.parse(text) as LogLine);
      }
      done();
    },
  });
  const config = loadConfig({ env: {}, overrides: { ...overrides, storage: { ...overrides.storage, filesystem: { rootdirectory: dir } } } });
  const app = await buildApp(config, { logger: { level: 'info', stream } });
  await app.ready();
  return {
    app,
    lines,
    text: () => raw.join('\n'),
    close: async () => {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** GET or HEAD of a manifest through `app`, with every manifest type accepted. */
export function getManifestOf(app: FastifyInstance, repo: string, reference: string, method: 'GET' | 'HEAD' = 'GET', authorization?: string) {
  return app.inject({
    method,
    url: `/v2/${repo}/manifests/${reference}`,
    headers: { accept: MANIFEST_TYPES, ...(authorization ? { authorization } : {}) },
  });
}

export const MANIFEST_TYPES = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(', ');

/** Pushes an image with a layer of `layer`'s bytes to the upstream's registry under `tag` (its config names the tag). */
export async function pushUpstreamImage(upstream: TestUpstream, repo: string, tag: string, layer: string | Buffer): Promise<{ digest: string; layer: string; config: string }> {
  const app = upstream.registry.app;
  const manifest = await makeImage(app, repo, { layer: tag, bytes: Buffer.from(layer) });
  const res = await putManifest(app, repo, tag, manifest);
  if (res.statusCode !== 201) throw new Error(`upstream push failed: ${res.statusCode} ${res.body}`);
  const doc = JSON.parse(manifest.body.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
  return { digest: manifest.digest, layer: doc.layers[0]!.digest, config: doc.config.digest };
}

export { sleep, waitFor } from '../support/socket.js';
