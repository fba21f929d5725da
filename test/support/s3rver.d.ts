// The part of s3rver 3.7 (a CommonJS package without types) that the test support uses.
declare module 's3rver' {
  import type { Server } from 'node:http';
  import type { AddressInfo } from 'node:net';

  namespace S3rver {
    interface BucketConfig {
      name: string;
      /** CORS or website configuration documents (XML). */
      configs?: Array<string | Buffer>;
    }
    interface Options {
      address?: string;
      /** 0 lets the operating system choose a free port. */
      port?: number;
      silent?: boolean;
      /** Where buckets and objects are kept on disk. */
      directory?: string;
      resetOnClose?: boolean;
      allowMismatchedSignatures?: boolean;
      vhostBuckets?: boolean;
      serviceEndpoint?: string;
      configureBuckets?: BucketConfig[];
    }
  }

  class S3rver {
    constructor(options?: S3rver.Options);
    /** Creates the configured buckets, then listens; resolves with the bound address. */
    run(): Promise<AddressInfo>;
    /** Closes the HTTP server (it waits for open connections). */
    close(): Promise<void>;
    reset(): void;
    /** Set by run(). */
    httpServer?: Server;
  }

  export = S3rver;
}
