import { z } from 'zod';
import { parseDuration } from './duration.js';

const duration = z.string().refine(
  (v) => {
    try {
      parseDuration(v);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'expected a duration such as 30s, 10m or 24h' },
);

const MIB = 1024 * 1024;

/** distribution's storage.s3 section; the keys marked ignored in IGNORED_KEYS change nothing here. */
const s3Schema = z
  .object({
    region: z.string().optional(),
    bucket: z
      .string()
      .regex(/^[a-z0-9.-]{3,63}$/, { message: 'expected an S3 bucket name: 3 to 63 lowercase letters, digits, dots or hyphens' }),
    regionendpoint: z.string().optional(),
    accesskey: z.string().optional(),
    secretkey: z.string().optional(),
    forcepathstyle: z.boolean().optional(),
    rootdirectory: z.string().optional(),
    chunksize: z
      .number()
      .int({ message: 'expected a whole number of bytes' })
      .min(5 * MIB, { message: 'must be at least 5242880 bytes (5 MiB), the smallest S3 multipart part' })
      .max(1024 * MIB, { message: 'must be at most 1073741824 bytes (1 GiB): each upload holds up to three parts in memory' })
      .optional(),
    secure: z.boolean().optional(),
    v4auth: z
      .boolean()
      .refine((v) => v, { message: 'only SigV4 request signing is supported; set it to true or remove it' })
      .optional(),
    loglevel: z.string().optional(),
    multipartcopychunksize: z.number().optional(),
    multipartcopymaxconcurrency: z.number().optional(),
    multipartcopythresholdsize: z.number().optional(),
    useragent: z.string().optional(),
  })
  .strict();

const positive = z.number().positive({ message: 'must be greater than zero' });

/** Requests per second per client address (token bucket); `methods` overrides rate and burst per method (zot's shape). */
const rateLimitSchema = z
  .object({
    rate: positive,
    burst: z.number().int().positive().optional(),
    methods: z
      .array(
        z
          .object({
            method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']),
            rate: positive,
            burst: z.number().int().positive().optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

const authSchema = z
  .object({
    htpasswd: z.object({ realm: z.string().min(1).optional(), path: z.string().min(1) }).strict().optional(),
    /** Ours: the built-in token server (Docker token authentication). */
    tokenserver: z
      .object({
        enabled: z.boolean().optional(),
        issuer: z.string().min(1).optional(),
        service: z.string().min(1).optional(),
        key: z.string().min(1).optional(),
        expiration: duration.optional(),
        refreshexpiration: duration.optional(),
      })
      .strict()
      .optional(),
    /** distribution's: trust tokens of an external issuer. */
    token: z
      .object({
        realm: z.string().min(1),
        service: z.string().min(1),
        issuer: z.string().min(1),
        rootcertbundle: z.string().min(1).optional(),
        jwks: z.string().min(1).optional(),
        signingalgorithms: z.array(z.string()).optional(),
        autoredirect: z.boolean().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const actionList = z.array(z.string());

/** Ours: who may do what where. Validated further (groups, patterns, actions) by src/auth/access-rules.ts. */
const accessSchema = z
  .object({
    groups: z.record(z.string(), z.array(z.string())).optional(),
    admins: z.array(z.string()).optional(),
    repositories: z
      .record(
        z.string(),
        z
          .object({
            users: z.record(z.string(), actionList).optional(),
            groups: z.record(z.string(), actionList).optional(),
            authenticated: actionList.optional(),
            anonymous: actionList.optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

/** Ours: the Amazon ECR API (POST / with X-Amz-Target), signed with SigV4 by the listed key pairs. */
const ecrSchema = z
  .object({
    enabled: z.boolean().optional(),
    accountid: z
      .string({ message: 'expected 12 digits as a string (quote it: "123456789012")' })
      .regex(/^\d{12}$/, { message: 'expected 12 digits, such as "123456789012"' })
      .optional(),
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, { message: 'expected an AWS region name such as us-east-1' })
      .optional(),
    createonpush: z.boolean().optional(),
    credentials: z
      .array(
        z
          .object({
            accesskeyid: z
              .string()
              .regex(/^[A-Z0-9]{16,128}$/, { message: 'expected 16 to 128 capital letters or digits, as AWS access key ids are' }),
            secretaccesskey: z.string().min(16, { message: 'must be at least 16 characters' }),
            user: z.string().min(1),
          })
          .strict(),
      )
      .optional(),
    lifecycle: z.object({ interval: duration.optional() }).strict().optional(),
  })
  .strict();

/**
 * The configuration file. Its keys follow CNCF distribution's config.yml so
 * that a registry:2 configuration can be brought as it is. Keys that
 * distribution has and that this registry accepts without acting on them are
 * listed as `ignored` (a warning is logged at start); any other key is an error.
 */
export const fileSchema = z
  .object({
    version: z.union([z.string(), z.number()]).optional(),
    log: z
      .object({
        level: z.enum(['error', 'warn', 'info', 'debug', 'trace', 'fatal', 'silent']).optional(),
        fields: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
        formatter: z.enum(['text', 'json', 'logstash']).optional(),
        accesslog: z.object({ disabled: z.boolean().optional() }).strict().optional(),
      })
      .strict()
      .optional(),
    http: z
      .object({
        addr: z.string().optional(),
        host: z.url().optional(),
        secret: z.string().optional(),
        relativeurls: z.boolean().optional(),
        draintimeout: duration.optional(),
        headers: z.record(z.string(), z.array(z.string())).optional(),
        tls: z
          .object({
            certificate: z.string(),
            key: z.string(),
            clientcas: z.array(z.string().min(1)).optional(),
            minimumtls: z.enum(['tls1.2', 'tls1.3']).optional(),
          })
          .strict()
          .optional(),
        ratelimit: rateLimitSchema.optional(),
        /** Ours: addresses or CIDR ranges of reverse proxies whose X-Forwarded-* headers are believed. */
        trustproxy: z.array(z.string().min(1)).optional(),
        /** distribution's debug server: a second address, for metrics, off the public port. */
        debug: z
          .object({
            addr: z.string().optional(),
            prometheus: z
              .object({
                enabled: z.boolean().optional(),
                path: z.string().regex(/^\/[^\s?#]*$/, { message: 'expected a path such as /metrics' }).optional(),
                /** Ours: label request metrics with the repository (one series per repository: mind the cardinality). */
                repositorylabels: z.boolean().optional(),
              })
              .strict()
              .optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    storage: z
      .object({
        filesystem: z
          .object({
            rootdirectory: z.string().min(1).optional(),
            maxthreads: z.number().int().positive().optional(),
            shared: z.boolean().optional(),
          })
          .strict()
          .optional(),
        s3: s3Schema.optional(),
        delete: z.object({ enabled: z.boolean().optional() }).strict().optional(),
        maintenance: z
          .object({
            uploadpurging: z
              .object({
                enabled: z.boolean().optional(),
                age: duration.optional(),
                interval: duration.optional(),
                dryrun: z.boolean().optional(),
              })
              .strict()
              .optional(),
            gc: z
              .object({
                enabled: z.boolean().optional(),
                interval: duration.optional(),
                delay: duration.optional(),
                dryrun: z.boolean().optional(),
                deleteuntagged: z.boolean().optional(),
              })
              .strict()
              .optional(),
            readonly: z.object({ enabled: z.boolean().optional() }).strict().optional(),
          })
          .strict()
          .optional(),
        cache: z.object({ blobdescriptor: z.string().optional() }).strict().optional(),
        redirect: z.object({ disable: z.boolean().optional() }).strict().optional(),
      })
      .strict()
      .optional(),
    health: z
      .object({
        storagedriver: z
          .object({ enabled: z.boolean().optional(), interval: duration.optional(), threshold: z.number().optional() })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    index: z
      .object({
        driver: z.enum(['sqlite', 'postgres']).optional(),
        path: z.string().min(1).optional(),
        postgres: z
          .object({
            url: z.string().min(1).optional(),
            host: z.string().min(1).optional(),
            port: z.number().int().min(1).max(65535).optional(),
            database: z.string().min(1).optional(),
            user: z.string().min(1).optional(),
            password: z.string().optional(),
            sslmode: z.enum(['disable', 'prefer', 'require', 'verify-ca', 'verify-full']).optional(),
            poolsize: z.number().int().min(1).max(1000).optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    auth: authSchema.optional(),
    access: accessSchema.optional(),
    ecr: ecrSchema.optional(),
    /** distribution's notifications: events to webhook endpoints (src/events/notifier.ts). */
    notifications: z
      .object({
        events: z.object({ includereferences: z.boolean().optional() }).strict().optional(),
        endpoints: z
          .array(
            z
              .object({
                name: z.string().min(1).max(100),
                disabled: z.boolean().optional(),
                url: z.string().min(1),
                // As distribution's http.Header: each name with a list of values (one value alone is taken too).
                headers: z.record(z.string().min(1), z.union([z.array(z.string()), z.string()])).optional(),
                timeout: duration.optional(),
                threshold: z.number().int().min(0).optional(),
                backoff: duration.optional(),
                ignoredmediatypes: z.array(z.string()).optional(),
                ignore: z
                  .object({
                    mediatypes: z.array(z.string()).optional(),
                    actions: z.array(z.enum(['push', 'pull', 'mount', 'delete'])).optional(),
                  })
                  .strict()
                  .optional(),
              })
              .strict(),
          )
          .optional(),
        /** Ours: how many undelivered events the outbox keeps before it drops the oldest. */
        outbox: z.object({ maxevents: z.number().int().min(1).optional() }).strict().optional(),
      })
      .strict()
      .optional(),
    /** Ours: the web UI at /ui/. */
    ui: z.object({ enabled: z.boolean().optional() }).strict().optional(),
    /**
     * distribution's pull-through cache (remoteurl, username, password, ttl: one upstream mirrored at
     * the root), and ours: upstreams by repository prefix (rules), named credentials for ECR's
     * pull-through cache rules, and the upstreams those rules may name.
     */
    proxy: z
      .object({
        remoteurl: z.string().min(1).optional(),
        username: z.string().optional(),
        password: z.string().optional(),
        ttl: duration.optional(),
        rules: z
          .array(
            z
              .object({
                prefix: z.string().min(1),
                remoteurl: z.string().min(1),
                username: z.string().optional(),
                password: z.string().optional(),
                ttl: duration.optional(),
              })
              .strict(),
          )
          .optional(),
        credentials: z
          .record(z.string(), z.object({ username: z.string().min(1), password: z.string().min(1), upstreams: z.array(z.string().min(1)).optional() }).strict())
          .optional(),
        allowedupstreams: z.array(z.string().min(1)).optional(),
        timeout: duration.optional(),
      })
      .strict()
      .optional(),
    /** Ours: image archives imported over /api/v1/import. */
    archives: z
      .object({
        maxsize: z.number().int().min(1024).optional(),
        maxentries: z.number().int().min(1).max(1_000_000).optional(),
      })
      .strict()
      .optional(),
    retention: z
      .object({
        policies: z
          .array(
            z
              .object({
                repositories: z.array(z.string().min(1)).min(1),
                // An ECR lifecycle policy document: as YAML/JSON members, or as its JSON text.
                policy: z.union([z.string().min(1), z.record(z.string(), z.unknown())]),
              })
              .strict(),
          )
          .optional(),
        dryrun: z.boolean().optional(),
        interval: duration.optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type ConfigFile = z.infer<typeof fileSchema>;

/**
 * Keys accepted for compatibility with distribution's config.yml that change nothing here.
 * `storage.redirect` acts with the s3 driver and is ignored with the filesystem driver only.
 */
export const IGNORED_KEYS = [
  'version',
  'log.formatter',
  'http.relativeurls',
  'storage.filesystem.maxthreads',
  'storage.s3.loglevel',
  'storage.s3.multipartcopychunksize',
  'storage.s3.multipartcopymaxconcurrency',
  'storage.s3.multipartcopythresholdsize',
  'storage.s3.useragent',
  'storage.cache',
  'storage.redirect',
  'health',
  'auth.token.autoredirect',
  'notifications.events',
];

/**
 * Leaf keys that environment variables may set, with the type each takes.
 * `http.addr` is set by REGISTRY_HTTP_ADDR, and so on.
 */
export const ENV_KEYS: Record<string, 'string' | 'boolean' | 'number' | 'list'> = {
  'log.level': 'string',
  'log.formatter': 'string',
  'log.accesslog.disabled': 'boolean',
  'http.addr': 'string',
  'http.host': 'string',
  'http.secret': 'string',
  'http.relativeurls': 'boolean',
  'http.draintimeout': 'string',
  'http.tls.certificate': 'string',
  'http.tls.key': 'string',
  'http.tls.clientcas': 'list',
  'http.tls.minimumtls': 'string',
  'http.trustproxy': 'list',
  'ui.enabled': 'boolean',
  'archives.maxsize': 'number',
  'proxy.remoteurl': 'string',
  'proxy.username': 'string',
  'proxy.password': 'string',
  'proxy.ttl': 'string',
  'proxy.timeout': 'string',
  'archives.maxentries': 'number',
  'http.debug.addr': 'string',
  'http.debug.prometheus.enabled': 'boolean',
  'http.debug.prometheus.path': 'string',
  'http.debug.prometheus.repositorylabels': 'boolean',
  'http.ratelimit.rate': 'number',
  'http.ratelimit.burst': 'number',
  'storage.filesystem.rootdirectory': 'string',
  'storage.filesystem.maxthreads': 'number',
  'storage.s3.region': 'string',
  'storage.s3.bucket': 'string',
  'storage.s3.regionendpoint': 'string',
  'storage.s3.accesskey': 'string',
  'storage.s3.secretkey': 'string',
  'storage.s3.forcepathstyle': 'boolean',
  'storage.s3.rootdirectory': 'string',
  'storage.s3.chunksize': 'number',
  'storage.s3.secure': 'boolean',
  'storage.s3.v4auth': 'boolean',
  'storage.s3.loglevel': 'string',
  'storage.s3.multipartcopychunksize': 'number',
  'storage.s3.multipartcopymaxconcurrency': 'number',
  'storage.s3.multipartcopythresholdsize': 'number',
  'storage.s3.useragent': 'string',
  'storage.delete.enabled': 'boolean',
  'storage.maintenance.uploadpurging.enabled': 'boolean',
  'storage.maintenance.uploadpurging.age': 'string',
  'storage.maintenance.uploadpurging.interval': 'string',
  'storage.maintenance.uploadpurging.dryrun': 'boolean',
  'storage.maintenance.readonly.enabled': 'boolean',
  'storage.maintenance.gc.enabled': 'boolean',
  'storage.maintenance.gc.interval': 'string',
  'storage.maintenance.gc.delay': 'string',
  'storage.maintenance.gc.dryrun': 'boolean',
  'storage.maintenance.gc.deleteuntagged': 'boolean',
  'retention.dryrun': 'boolean',
  'retention.interval': 'string',
  'storage.cache.blobdescriptor': 'string',
  'storage.redirect.disable': 'boolean',
  'storage.filesystem.shared': 'boolean',
  'index.driver': 'string',
  'index.path': 'string',
  'index.postgres.url': 'string',
  'index.postgres.host': 'string',
  'index.postgres.port': 'number',
  'index.postgres.database': 'string',
  'index.postgres.user': 'string',
  'index.postgres.password': 'string',
  'index.postgres.sslmode': 'string',
  'index.postgres.poolsize': 'number',
  'auth.htpasswd.realm': 'string',
  'auth.htpasswd.path': 'string',
  'auth.tokenserver.enabled': 'boolean',
  'auth.tokenserver.issuer': 'string',
  'auth.tokenserver.service': 'string',
  'auth.tokenserver.key': 'string',
  'auth.tokenserver.expiration': 'string',
  'auth.tokenserver.refreshexpiration': 'string',
  'auth.token.realm': 'string',
  'auth.token.service': 'string',
  'auth.token.issuer': 'string',
  'auth.token.rootcertbundle': 'string',
  'auth.token.jwks': 'string',
  'auth.token.signingalgorithms': 'list',
  'auth.token.autoredirect': 'boolean',
  'ecr.enabled': 'boolean',
  'ecr.accountid': 'string',
  'ecr.region': 'string',
  'ecr.createonpush': 'boolean',
  'ecr.lifecycle.interval': 'string',
};
