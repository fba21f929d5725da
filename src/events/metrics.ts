/**
 * The registry's Prometheus metrics (prom-client), in a registry of their own, served on the debug
 * server (http.debug.addr) only. What is counted where it happens (requests, storage and index
 * calls, jobs) is pushed here; what other rooms count as plain numbers (cache hits, login locks,
 * the S3 client's retries) is read when Prometheus scrapes, so that those rooms know nothing of
 * prom-client. No label carries a repository name unless `repositoryLabels` is on.
 */
import { Counter, Gauge, Histogram, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';

/** One finished (or abandoned) HTTP request. */
export interface RequestObservation {
  /** A small fixed set: the API area (`manifest`, `blob`, `blob_upload`, ...), never a raw path. */
  readonly route: string;
  readonly method: string;
  /** The status sent, or 0 when the client went away before the response ended. */
  readonly status: number;
  readonly seconds: number;
  /** Bytes read from, and written to, the connection for this request, headers included. */
  readonly received: number;
  readonly sent: number;
  /** The repository the request named, when it named a valid one. */
  readonly repository?: string;
}

/** Counts that other rooms keep as plain numbers, read at each scrape. */
export interface CountSources {
  /** Named caches: hits and misses since the start. */
  caches?: Array<{ name: string; stats: () => { readonly hits: number; readonly misses: number } }>;
  /** Locks begun by the login throttle since the start. */
  lockouts?: () => { readonly pairs: number; readonly addresses: number };
  /** The storage backend's retries per operation since the start. */
  storageRetries?: () => ReadonlyMap<string, number> | undefined;
}

export interface GcRunObservation {
  readonly manifests: number;
  readonly blobs: number;
  readonly bytes: number;
  readonly dryRun: boolean;
  readonly seconds: number;
}

const SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const FAST_SECONDS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];
const JOB_SECONDS = [0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600];

export class RegistryMetrics {
  readonly registry = new PromRegistry();
  readonly repositoryLabels: boolean;
  readonly #requests: Counter<string>;
  readonly #duration: Histogram<string>;
  readonly #received: Counter<string>;
  readonly #sent: Counter<string>;
  readonly #uploads: Gauge<string>;
  readonly #storage: Histogram<string>;
  readonly #index: Histogram<string>;
  readonly #authFailures: Counter<string>;
  readonly #gcRuns: Counter<string>;
  readonly #gcRemoved: Counter<string>;
  readonly #gcBytes: Counter<string>;
  readonly #gcDuration: Histogram<string>;
  readonly #lifecycleRuns: Counter<string>;
  readonly #lifecycleExpired: Counter<string>;
  readonly #lifecycleDuration: Histogram<string>;
  readonly #jobFailures: Counter<string>;
  readonly #events: Counter<string>;
  readonly #deliveryFailures: Counter<string>;
  readonly #archives: Counter<string>;
  readonly #archiveBytes: Counter<string>;
  readonly #proxied: Counter<string>;
  readonly #storageBackend: string;
  readonly #indexDriver: string;

  #sources: CountSources = {};

  constructor(options: { repositoryLabels?: boolean; storageBackend: string; indexDriver: string }) {
    this.repositoryLabels = options.repositoryLabels ?? false;
    const registers = [this.registry];
    const byRepo = (labels: string[]) => (this.repositoryLabels ? [...labels, 'repository'] : labels);
    collectDefaultMetrics({ register: this.registry });

    this.#requests = new Counter({
      name: 'registry_http_requests_total',
      help: 'HTTP requests answered, by API area, method and status (0: the client went away first).',
      labelNames: byRepo(['route', 'method', 'status']),
      registers,
    });
    this.#duration = new Histogram({
      name: 'registry_http_request_duration_seconds',
      help: 'Time from the request line to the last byte of the response.',
      labelNames: byRepo(['route', 'method']),
      buckets: SECONDS,
      registers,
    });
    this.#received = new Counter({
      name: 'registry_http_received_bytes_total',
      help: 'Bytes read from clients, request headers included.',
      labelNames: byRepo(['route']),
      registers,
    });
    this.#sent = new Counter({
      name: 'registry_http_sent_bytes_total',
      help: 'Bytes written to clients, response headers included.',
      labelNames: byRepo(['route']),
      registers,
    });
    this.#uploads = new Gauge({
      name: 'registry_uploads_in_flight',
      help: 'Blob upload requests (POST, PATCH, PUT of an upload) being received now.',
      registers,
    });
    this.#storage = new Histogram({
      name: 'registry_storage_operation_duration_seconds',
      help: 'Storage backend calls, by backend, operation and outcome (ok or error).',
      labelNames: ['backend', 'operation', 'outcome'],
      buckets: SECONDS,
      registers,
    });
    const backend = (this.#storageBackend = options.storageBackend);
    this.#indexDriver = options.indexDriver;
    const self = this;
    new Counter({
      name: 'registry_storage_retries_total',
      help: "Requests the storage backend's client sent again after a failure, by backend and operation.",
      labelNames: ['backend', 'operation'],
      registers,
      collect() {
        this.reset();
        for (const [operation, n] of self.#sources.storageRetries?.() ?? []) this.inc({ backend, operation }, n);
      },
    });
    this.#index = new Histogram({
      name: 'registry_index_query_duration_seconds',
      help: 'Index calls (SQLite or PostgreSQL), by driver and operation.',
      labelNames: ['driver', 'operation', 'outcome'],
      buckets: FAST_SECONDS,
      registers,
    });
    new Counter({
      name: 'registry_cache_lookups_total',
      help: 'Lookups in in-memory caches (tags: tag lists; passwords: recent bcrypt verifications), by result.',
      labelNames: ['cache', 'result'],
      registers,
      collect() {
        this.reset();
        for (const { name, stats } of self.#sources.caches ?? []) {
          const { hits, misses } = stats();
          this.inc({ cache: name, result: 'hit' }, hits);
          this.inc({ cache: name, result: 'miss' }, misses);
        }
      },
    });
    this.#authFailures = new Counter({
      name: 'registry_auth_failures_total',
      help: 'Refused credentials, by reason (invalid, expired, throttled, busy).',
      labelNames: ['reason'],
      registers,
    });
    new Counter({
      name: 'registry_auth_lockouts_total',
      help: 'Locks begun after repeated failed logins, of an (address, user) pair or of an address.',
      labelNames: ['scope'],
      registers,
      collect() {
        this.reset();
        const locks = self.#sources.lockouts?.();
        if (!locks) return;
        this.inc({ scope: 'user' }, locks.pairs);
        this.inc({ scope: 'address' }, locks.addresses);
      },
    });
    this.#gcRuns = new Counter({
      name: 'registry_gc_runs_total',
      help: 'Garbage collection runs, by mode (delete or dryrun).',
      labelNames: ['mode'],
      registers,
    });
    this.#gcRemoved = new Counter({
      name: 'registry_gc_removed_total',
      help: 'What garbage collection removed (or, in a dry run, would remove), by kind (manifest or blob).',
      labelNames: ['kind', 'mode'],
      registers,
    });
    this.#gcBytes = new Counter({
      name: 'registry_gc_removed_bytes_total',
      help: 'Bytes of the blobs garbage collection removed (or would remove).',
      labelNames: ['mode'],
      registers,
    });
    this.#gcDuration = new Histogram({
      name: 'registry_gc_duration_seconds',
      help: 'How long garbage collection runs took.',
      buckets: JOB_SECONDS,
      registers,
    });
    this.#lifecycleRuns = new Counter({
      name: 'registry_lifecycle_runs_total',
      help: 'Runs of the ECR lifecycle policies (lifecycle) and of the retention policies (retention).',
      labelNames: ['job'],
      registers,
    });
    this.#lifecycleExpired = new Counter({
      name: 'registry_lifecycle_expired_images_total',
      help: 'Images the lifecycle or retention policies expired (or, in a dry run, would expire).',
      labelNames: ['job', 'mode'],
      registers,
    });
    this.#lifecycleDuration = new Histogram({
      name: 'registry_lifecycle_duration_seconds',
      help: 'How long lifecycle and retention runs took.',
      labelNames: ['job'],
      buckets: JOB_SECONDS,
      registers,
    });
    this.#jobFailures = new Counter({
      name: 'registry_job_failures_total',
      help: 'Background job runs that failed, by job (gc, lifecycle, retention, upload-purge).',
      labelNames: ['job'],
      registers,
    });
    this.#events = new Counter({
      name: 'registry_notification_events_total',
      help: 'Notification events per endpoint: queued (taken from the outbox for delivery), delivered, or dropped (past the outbox bound).',
      labelNames: ['endpoint', 'result'],
      registers,
    });
    this.#deliveryFailures = new Counter({
      name: 'registry_notification_delivery_failures_total',
      help: 'Deliveries to an endpoint that failed (refused, timed out, or not answered with 2xx); they are retried.',
      labelNames: ['endpoint'],
      registers,
    });
    this.#archives = new Counter({
      name: 'registry_archive_images_total',
      help: 'Images imported from, and exported as, archives over /api/v1/.',
      labelNames: ['direction'],
      registers,
    });
    this.#archiveBytes = new Counter({
      name: 'registry_archive_bytes_total',
      help: 'Bytes of the archives imported and exported over /api/v1/.',
      labelNames: ['direction'],
      registers,
    });
    for (const direction of ['import', 'export']) {
      this.#archives.inc({ direction }, 0);
      this.#archiveBytes.inc({ direction }, 0);
    }
    this.#proxied = new Counter({
      name: 'registry_proxy_requests_total',
      help:
        'Pull-through cache lookups by kind (manifest, blob) and result: hit (served from the cache), miss (fetched from the upstream), ' +
        'revalidated (a tag confirmed by a HEAD after its ttl), updated (a tag moved upstream, fetched anew), stale (served from the cache ' +
        'while the upstream is unavailable), unavailable (not cached, upstream unavailable: 503).',
      labelNames: ['kind', 'result'],
      registers,
    });
    for (const kind of ['manifest', 'blob']) {
      for (const result of ['hit', 'miss', 'revalidated', 'updated', 'stale', 'unavailable']) this.#proxied.inc({ kind, result }, 0);
    }
    // Every series that can be known at the start is there from the start (at zero), so that
    // rate() and increase() see the first events, and dashboards show zero rather than nothing.
    this.#uploads.set(0);
    for (const reason of ['invalid', 'expired', 'throttled', 'busy']) this.#authFailures.inc({ reason }, 0);
    for (const mode of ['delete', 'dryrun']) {
      this.#gcRuns.inc({ mode }, 0);
      this.#gcBytes.inc({ mode }, 0);
      for (const kind of ['manifest', 'blob']) this.#gcRemoved.inc({ kind, mode }, 0);
    }
  }

  /** Where the counts kept elsewhere are read at each scrape. */
  watch(sources: CountSources): void {
    this.#sources = sources;
  }

  request(o: RequestObservation): void {
    const base = this.repositoryLabels ? { route: o.route, repository: o.repository ?? '' } : { route: o.route };
    this.#requests.inc({ ...base, method: o.method, status: String(o.status) });
    this.#duration.observe({ ...base, method: o.method }, o.seconds);
    if (o.received > 0) this.#received.inc(base, o.received);
    if (o.sent > 0) this.#sent.inc(base, o.sent);
  }

  uploadStarted(): void {
    this.#uploads.inc();
  }

  uploadEnded(): void {
    this.#uploads.dec();
  }

  storageCall(operation: string, seconds: number, ok: boolean): void {
    this.#storage.observe({ backend: this.#storageBackend, operation, outcome: ok ? 'ok' : 'error' }, seconds);
  }

  indexCall(operation: string, seconds: number, ok: boolean): void {
    this.#index.observe({ driver: this.#indexDriver, operation, outcome: ok ? 'ok' : 'error' }, seconds);
  }

  authFailure(reason: string): void {
    this.#authFailures.inc({ reason });
  }

  gcRun(o: GcRunObservation): void {
    const mode = o.dryRun ? 'dryrun' : 'delete';
    this.#gcRuns.inc({ mode });
    this.#gcRemoved.inc({ kind: 'manifest', mode }, o.manifests);
    this.#gcRemoved.inc({ kind: 'blob', mode }, o.blobs);
    this.#gcBytes.inc({ mode }, o.bytes);
    this.#gcDuration.observe(o.seconds);
  }

  lifecycleRun(job: 'lifecycle' | 'retention', expired: number, dryRun: boolean, seconds: number): void {
    this.#lifecycleRuns.inc({ job });
    this.#lifecycleExpired.inc({ job, mode: dryRun ? 'dryrun' : 'delete' }, expired);
    this.#lifecycleDuration.observe({ job }, seconds);
  }

  jobFailed(job: string): void {
    this.#jobFailures.inc({ job });
  }

  /** Events of a notification endpoint; `result` is queued, delivered or dropped. */
  notificationEvents(endpoint: string, result: 'queued' | 'delivered' | 'dropped', n = 1): void {
    this.#events.inc({ endpoint, result }, n);
  }

  notificationFailed(endpoint: string): void {
    this.#deliveryFailures.inc({ endpoint });
  }

  archive(direction: 'import' | 'export', images: number, bytes: number): void {
    this.#archives.inc({ direction }, images);
    this.#archiveBytes.inc({ direction }, bytes);
  }

  /** A pull-through cache lookup (src/proxy/cache.ts). */
  proxied(kind: 'manifest' | 'blob', result: 'hit' | 'miss' | 'revalidated' | 'updated' | 'stale' | 'unavailable'): void {
    this.#proxied.inc({ kind, result });
  }

  /** The text exposition format, and its content type. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
