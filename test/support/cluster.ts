// A registry of several nodes, for tests: an s3rver bucket, a fresh PostgreSQL database, N
// `ocireg serve` processes (dist/cli.js) sharing both, and haproxy in front, round robin per
// request. Used by test/cluster/, and by the e2e and conformance suites in their cluster modes.
// The core (database, nodes, haproxy) is bench/cluster.ts, which the bench uses too; this adds
// the in-process s3rver and the tests' defaults.
//
// This module runs in vitest's main process too (global setups), so it must not import
// ./postgres.js, which loads vitest's test API.
import { join } from 'node:path';
import { startClusterWith, type Cluster as CoreCluster } from '../../bench/cluster.js';
import { PROJECT_ROOT } from './built-server.js';
import { startS3Server, type S3Server } from './s3.js';

export {
  HAPROXY,
  clusterStorageEnv,
  createClusterDatabase,
  errorLines,
  haproxyConfig,
  startNode,
  type ClusterDatabase,
  type ClusterNode,
  type NodeHandle,
  type NodeSpec,
} from '../../bench/cluster.js';

/** The registry's compiled entry point (`npm run build`). */
export const CLUSTER_CLI = join(PROJECT_ROOT, 'dist', 'cli.js');
/** Where the admin URL comes from when none is given (test/support/postgres.ts reads the same). */
const POSTGRES_URL_VARIABLE = 'OCIREG_TEST_POSTGRES_URL';

export interface ClusterOptions {
  /** How many registry nodes (default 3). */
  nodes?: number;
  /** Folder for the configuration files, logs, the bucket's files and the token key (made if missing; left in place). */
  directory: string;
  /** Extra REGISTRY_* variables for every node (auth, maintenance...); they win over the defaults, not over storage and index. */
  env?: Record<string, string>;
  /** Sections for every node's configuration file (what has no variable, such as `access`). */
  config?: Record<string, unknown>;
  /** Admin URL of the PostgreSQL server to make the cluster's database on (default: OCIREG_TEST_POSTGRES_URL). */
  postgresUrl?: string;
  /** Every node appends to this one file instead of a file of its own (lines tell their `node` field apart). */
  sharedLog?: string;
  /** The CLI to run (default dist/cli.js). */
  cli?: string;
}

/** A cluster whose store is an in-process s3rver. */
export type Cluster = CoreCluster<S3Server>;

/** The admin URL to use: the one given, else OCIREG_TEST_POSTGRES_URL; throws with a pointer when neither. */
export function clusterAdminUrl(given?: string): string {
  const url = given || process.env[POSTGRES_URL_VARIABLE];
  if (!url) {
    throw new Error(
      `the cluster needs a PostgreSQL server: set ${POSTGRES_URL_VARIABLE} (bash scripts/postgres.sh start DIR PORT prints it) ` +
        'or run under test/support/postgres-global.ts',
    );
  }
  return url;
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const { postgresUrl, cli, ...rest } = options;
  return await startClusterWith({
    ...rest,
    cli: cli ?? CLUSTER_CLI,
    postgresUrl: clusterAdminUrl(postgresUrl),
    startStore: (dir) => startS3Server({ directory: join(dir, 's3') }),
  });
}
