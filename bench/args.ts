// Command-line options of `npm run bench` (pure: no I/O).

export const WORKLOAD_NAMES = ['limits', 'push', 'chunked', 'pull', 'manifest', 'small', 'tags', 'catalog', 'auth', 'authflood', 'docker'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

export type LoadGenerator = 'auto' | 'node';

export type IndexDriver = 'sqlite' | 'postgres';
/** Most registry nodes `--nodes` starts (each is a Node process on the same machine). */
export const MAX_NODES = 16;

export interface Options {
  reps: number;
  only: WorkloadName[];
  /** Size in bytes of the big blob (and of the machine-limit measurements). */
  size: number;
  /** Folder under which the bench's own temporary folder is made. */
  dir: string | undefined;
  keep: boolean;
  logLevel: LogLevel;
  /** Seconds of each manifest HEAD/GET load run (also those of auth and authflood). */
  duration: number;
  /**
   * 'auto': wrk for manifest GETs, ab for HEADs and curl for the big blob's monolithic push and
   * pull, each when installed, else the Node client; 'node': always the Node client.
   */
  load: LoadGenerator;
  /** Bytes of random data in each of the docker image's three layers. */
  dockerLayerSize: number;
  /**
   * 'postgres': also run ours on a PostgreSQL index, beside the plain SQLite node (see shapes.ts);
   * implied by nodes > 1.
   */
  index: IndexDriver;
  /** More than 1: also run that many nodes of ours behind haproxy, on s3rver and PostgreSQL. */
  nodes: number;
  /** Admin URL of the PostgreSQL server the bench makes its databases on (else OCIREG_TEST_POSTGRES_URL). */
  postgresUrl: string | undefined;
  /** Tags the tags workload makes and lists, and repositories the catalog workload makes. */
  listingCount: number;
  help: boolean;
}

/** The workloads that --index and --nodes also run in their shapes (the rest are ours vs distribution, or ours vs ours). */
export const SHAPE_WORKLOADS: readonly WorkloadName[] = ['push', 'chunked', 'pull', 'manifest', 'small', 'tags', 'catalog'];
const SHAPE_WORKLOAD_LIST = SHAPE_WORKLOADS.join(', ');

export const USAGE = `Usage: npm run bench -- [options]

Runs ocireg and, when installed, CNCF distribution (docker-registry) side by side and
compares them. Results are printed and saved under bench/results/.

Options:
  --reps N              repetitions of each workload (default 3)
  --only a,b            workloads to run, of: ${WORKLOAD_NAMES.join(', ')} (default all)
  --size SIZE           size of the big blob, e.g. 64MiB (default 1GiB)
  --duration S          seconds of each manifest HEAD/GET load run, also in auth and
                        authflood (default 5)
  --log-level L         servers' log level: ${LOG_LEVELS.join(', ')} (default info)
  --load auto|node      clients: wrk/ab for manifests and curl for the big push and pull
                        when installed, else Node (auto, the default); or always Node
  --docker-layer-size SIZE  random bytes in each of the docker image's 3 layers (default 100MB)
  --index sqlite|postgres  postgres: also run ours on a PostgreSQL index (filesystem store
                        marked shared) beside the single SQLite node (default sqlite: only that)
  --nodes N             N > 1: also run N nodes of ours behind haproxy on s3rver and PostgreSQL,
                        and one node on s3rver with SQLite and with PostgreSQL, to tell the
                        store's cost from the index's and the nodes' (default 1; implies
                        --index postgres). Workloads: ${SHAPE_WORKLOAD_LIST}
  --listing-count N     tags (tags) and repositories (catalog) made and listed (default 10000;
                        fewer to try slow shapes quickly, e.g. s3rver)
  --postgres-url URL    admin URL of the PostgreSQL server to make the bench's databases on
                        (default $OCIREG_TEST_POSTGRES_URL)
  --dir DIR             make the bench's temporary folder under DIR (default the OS temp dir)
  --keep                keep the temporary folder (server data and logs)
  -h, --help            show this help
`;

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
};

/** "64MiB" → 67108864; KiB/MiB/GiB (and bare K/M/G) are binary, KB/MB/GB decimal. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`not a size: ${JSON.stringify(text)} (expected e.g. 64MiB, 1GiB, 500MB)`);
  const bytes = Math.round(Number(m[1]) * unit);
  if (bytes <= 0) throw new Error(`size must be positive: ${text}`);
  return bytes;
}

function positiveInt(name: string, text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new Error(`${name} expects a whole number ≥ 1, got ${JSON.stringify(text)}`);
  return Number(text);
}

export function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    reps: 3,
    only: [...WORKLOAD_NAMES],
    size: 1024 ** 3,
    dir: undefined,
    keep: false,
    logLevel: 'info',
    duration: 5,
    load: 'auto',
    dockerLayerSize: 100 * 1000 ** 2,
    index: 'sqlite',
    nodes: 1,
    postgresUrl: undefined,
    listingCount: 10_000,
    help: false,
  };
  let indexGiven: IndexDriver | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new Error(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case '--reps':
        o.reps = positiveInt(name, value());
        break;
      case '--only': {
        const names = value()
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const unknown = names.filter((n) => !(WORKLOAD_NAMES as readonly string[]).includes(n));
        if (unknown.length > 0 || names.length === 0) {
          throw new Error(`--only: unknown workload ${unknown.join(', ') || '(none given)'}; choose from ${WORKLOAD_NAMES.join(', ')}`);
        }
        o.only = WORKLOAD_NAMES.filter((n) => names.includes(n));
        break;
      }
      case '--size':
        o.size = parseSize(value());
        break;
      case '--docker-layer-size':
        o.dockerLayerSize = parseSize(value());
        break;
      case '--duration':
        o.duration = positiveInt(name, value());
        break;
      case '--dir':
        o.dir = value();
        break;
      case '--keep':
        o.keep = true;
        break;
      case '--log-level': {
        const v = value();
        if (!(LOG_LEVELS as readonly string[]).includes(v)) throw new Error(`--log-level: expected one of ${LOG_LEVELS.join(', ')}`);
        o.logLevel = v as LogLevel;
        break;
      }
      case '--load': {
        const v = value();
        if (v !== 'auto' && v !== 'node') throw new Error('--load: expected auto or node');
        o.load = v;
        break;
      }
      case '--index': {
        const v = value();
        if (v !== 'sqlite' && v !== 'postgres') throw new Error('--index: expected sqlite or postgres');
        indexGiven = v;
        break;
      }
      case '--nodes':
        o.nodes = positiveInt(name, value());
        if (o.nodes > MAX_NODES) throw new Error(`--nodes: at most ${MAX_NODES}`);
        break;
      case '--listing-count':
        o.listingCount = positiveInt(name, value());
        if (o.listingCount < 100) throw new Error('--listing-count: at least 100 (the first page is n=100)');
        break;
      case '--postgres-url': {
        const v = value();
        if (!/^postgres(ql)?:\/\//.test(v)) throw new Error('--postgres-url: expected a postgres:// URL');
        o.postgresUrl = v;
        break;
      }
      case '-h':
      case '--help':
        o.help = true;
        break;
      default:
        throw new Error(`unknown argument: ${arg}`);
    }
  }
  // Several nodes can only share a PostgreSQL index: an SQLite file is one process's.
  if (o.nodes > 1 && indexGiven === 'sqlite') throw new Error('--nodes: several nodes share one index, which must be PostgreSQL: drop --index sqlite');
  o.index = indexGiven ?? (o.nodes > 1 ? 'postgres' : 'sqlite');
  return o;
}
