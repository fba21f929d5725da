import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import S3rver from 's3rver';

/** An in-process s3rver with one bucket, for tests of the S3 blob store. */
export interface S3Server {
  /** `http://127.0.0.1:PORT`, to be used with path-style addressing. */
  endpoint: string;
  bucket: string;
  region: string;
  accessKey: string;
  secretKey: string;
  /** The folder s3rver keeps buckets and objects in. */
  directory: string;
  /** Closes the server (and its open connections); removes `directory` if startS3Server created it. */
  stop(): Promise<void>;
}

/** What a client needs to reach an S3 endpoint: an S3Server, or the same with another endpoint (a proxy). */
export type S3Endpoint = Pick<S3Server, 'endpoint' | 'region' | 'accessKey' | 'secretKey'>;

export interface StartS3ServerOptions {
  /** Created at start; default 'registry-test'. s3rver wants 3+ characters. */
  bucket?: string;
  /** Use this folder instead of a fresh temporary one; stop() leaves it in place. */
  directory?: string;
  /** Default 0: any free port. */
  port?: number;
}

/** s3rver's built-in account; it knows no other keys. */
const ACCESS_KEY = 'S3RVER';
const SECRET_KEY = 'S3RVER';
const REGION = 'us-east-1';
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

export async function startS3Server(options: StartS3ServerOptions = {}): Promise<S3Server> {
  const bucket = options.bucket ?? 'registry-test';
  const ownDirectory = options.directory === undefined;
  const directory = options.directory ?? (await mkdtemp(join(tmpdir(), 'ocireg-s3-')));
  const s3rver = new S3rver({
    address: '127.0.0.1',
    port: options.port ?? 0,
    silent: true,
    directory,
    // Path-style only, as the clients here are configured.
    vhostBuckets: false,
    configureBuckets: [{ name: bucket }],
  });

  let port: number;
  try {
    ({ port } = await withTimeout(s3rver.run(), START_TIMEOUT_MS, 's3rver start'));
  } catch (err) {
    await closeServer(s3rver).catch(() => undefined);
    if (ownDirectory) await rm(directory, { recursive: true, force: true });
    throw err;
  }

  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    region: REGION,
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
    directory,
    stop() {
      stopped ??= (async () => {
        try {
          await closeServer(s3rver);
        } finally {
          if (ownDirectory) await rm(directory, { recursive: true, force: true });
        }
      })();
      return stopped;
    },
  };
}

/** close() waits for keep-alive connections (SDK clients keep them), so end those too. */
async function closeServer(s3rver: S3rver): Promise<void> {
  const server = s3rver.httpServer;
  if (server === undefined || !server.listening) return;
  const closed = s3rver.close();
  server.closeAllConnections();
  await withTimeout(closed, STOP_TIMEOUT_MS, 's3rver stop');
}

/**
 * An S3 client for the server (or for a proxy in front of it): path-style, s3rver's credentials,
 * and checksums only where an operation requires them. `config` overrides any of it (maxAttempts, say).
 */
export function s3Client(server: S3Endpoint, config: S3ClientConfig = {}): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // A hung server fails the test instead of hanging it.
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 15_000 },
    ...config,
  });
}

/**
 * Every key in the bucket under `prefix`, in S3's order, to check what a test left behind.
 *
 * This pages with ListObjects (v1) and a marker, not ListObjectsV2: s3rver 3.7 makes its V2 continuation
 * tokens with DES, which OpenSSL 3 (Node 17+) refuses, so every truncated V2 page is a 500 InternalError
 * unless Node runs with --openssl-legacy-provider. `pageSize` (at most 1000) is there to test paging.
 */
export async function listKeys(
  server: S3Endpoint & { bucket: string },
  prefix = '',
  pageSize = 1000,
): Promise<string[]> {
  const client = s3Client(server);
  try {
    const keys: string[] = [];
    let marker: string | undefined;
    for (;;) {
      const page = await client.send(
        new ListObjectsCommand({ Bucket: server.bucket, Prefix: prefix, Marker: marker, MaxKeys: pageSize }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) keys.push(object.Key);
      }
      const last = keys.at(-1);
      if (page.IsTruncated !== true || last === undefined || last === marker) return keys;
      marker = last;
    }
  } finally {
    client.destroy();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Environment variables that put a registry's blobs on `server` under `rootDirectory`, with its
 * index at `indexPath` (REGISTRY_STORAGE=s3 drops any filesystem section).
 */
export function registryS3Env(server: S3Server, indexPath: string, rootDirectory = '/'): Record<string, string> {
  return {
    REGISTRY_STORAGE: 's3',
    REGISTRY_STORAGE_S3_BUCKET: server.bucket,
    REGISTRY_STORAGE_S3_REGION: server.region,
    REGISTRY_STORAGE_S3_REGIONENDPOINT: server.endpoint,
    REGISTRY_STORAGE_S3_ACCESSKEY: server.accessKey,
    REGISTRY_STORAGE_S3_SECRETKEY: server.secretKey,
    REGISTRY_STORAGE_S3_FORCEPATHSTYLE: 'true',
    REGISTRY_STORAGE_S3_ROOTDIRECTORY: rootDirectory,
    REGISTRY_INDEX_PATH: indexPath,
  };
}
