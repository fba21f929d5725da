import type { Config } from '../config/config.js';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs-blob-store.js';

/** The blob store the configuration names, opened and checked. */
export async function openStore(config: Config): Promise<BlobStore> {
  const s3 = config.storage.s3;
  if (s3) {
    // Loaded only when used: the AWS SDK adds tens of megabytes to the process.
    const { S3BlobStore } = await import('./s3-blob-store.js');
    const store = new S3BlobStore({
      bucket: s3.bucket,
      region: s3.region,
      endpoint: s3.endpoint,
      credentials:
        s3.accessKey !== undefined && s3.secretKey !== undefined
          ? { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey }
          : undefined,
      forcePathStyle: s3.forcePathStyle,
      rootDirectory: s3.rootDirectory,
      chunkSize: s3.chunkSize,
    });
    try {
      await store.init();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }
  const store = new FsBlobStore(config.storage.rootDirectory);
  await store.init();
  return store;
}

/** Where the store keeps its data, for messages: a folder or s3://bucket/prefix. */
export function storeLocation(config: Config): string {
  const s3 = config.storage.s3;
  if (s3) return `s3://${s3.bucket}/${s3.rootDirectory}`;
  return config.storage.rootDirectory;
}
