// What the authentication and TLS end-to-end files share: a registry started with a
// configuration file of its own (htpasswd, token server, TLS), htpasswd files written by the
// real `htpasswd -B`, certificates made by the openssl CLI, tiny images made by `docker import`,
// and a bounded HTTP(S) request that can trust a test CA.
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, spawnServer } from '../support/built-server.js';
import { BUILT_CLI, run } from './harness.js';

export interface ConfiguredRegistry {
  pid: number;
  /** `http(s)://<host>:<port>` */
  url: string;
  /** `<host>:<port>`, for image references and `docker login`. */
  host: string;
  port: number;
  configPath: string;
  /** The registry's stdout and stderr (pino JSON lines with the access log). */
  logFile: string;
  /** SIGTERM, then SIGKILL after 10 s; waits for the exit. */
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** Folder for the config file, the data and the log (made if missing). */
  work: string;
  /** Sections of the configuration file besides http.addr, storage and log (auth, access, http.tls...). */
  config: Record<string, unknown>;
  /** The address to listen on (default 127.0.0.1); an IPv6 address without brackets. */
  listen?: string;
  /** The name clients use for it (default: the listen address). */
  hostname?: string;
  /** PEM of the CA that signed the server certificate, when `config.http.tls` is set. */
  ca?: Buffer;
}

/**
 * Writes `<work>/config.yml` (storage in `<work>/data`, log level info so that the access log
 * is written) and starts `node dist/cli.js serve <config>` with only PATH and HOME in its
 * environment; waits (bounded) until `/v2/` answers 200 or 401.
 */
export async function startConfiguredRegistry(options: RegistryOptions): Promise<ConfiguredRegistry> {
  const { work } = options;
  await mkdir(join(work, 'data'), { recursive: true });
  const listen = options.listen ?? '127.0.0.1';
  const port = await freePort(listen);
  const bracketed = listen.includes(':') ? `[${listen}]` : listen;
  const hostname = options.hostname ?? bracketed;
  const tls = options.ca !== undefined;
  const host = `${hostname}:${port}`;
  const url = `${tls ? 'https' : 'http'}://${host}`;
  const userHttp = (options.config.http ?? {}) as Record<string, unknown>;
  const file = {
    ...options.config,
    http: { ...userHttp, addr: `${bracketed}:${port}` },
    storage: { filesystem: { rootdirectory: join(work, 'data') }, delete: { enabled: true } },
    log: { level: 'info' },
  };
  const configPath = join(work, 'config.yml');
  await writeFile(configPath, stringify(file));
  const logFile = join(work, 'registry.log');
  // Ready once /v2/ answers 200 or 401, asked at the address it listens on (the client-facing
  // name may be an /etc/hosts entry added later).
  const direct = `${tls ? 'https' : 'http'}://${bracketed}:${port}`;
  const ready = async () => {
    const res = await httpGet(`${direct}/v2/`, { ca: options.ca, servername: hostname, timeoutMs: 2_000 });
    return res.status === 200 || res.status === 401;
  };
  const server = await spawnServer(BUILT_CLI, {}, work, { host: listen, port, args: [configPath], logFile, ready });
  return { pid: server.pid, url, host, port, configPath, logFile, stop: () => server.stop() };
}

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * One bounded GET (or another method) over http or https; `ca` is the only root trusted for
 * https, `servername` the name the certificate must carry (default: the URL's host).
 */
export function httpGet(
  url: string,
  options: { ca?: Buffer; servername?: string; headers?: Record<string, string>; method?: string; body?: string; timeoutMs?: number } = {},
): Promise<HttpReply> {
  const target = new URL(url);
  const https = target.protocol === 'https:';
  const send = https ? httpsRequest : httpRequest;
  return new Promise<HttpReply>((resolve, reject) => {
    const req = send(
      target,
      {
        method: options.method ?? 'GET',
        headers: options.headers,
        timeout: options.timeoutMs ?? 10_000,
        ...(https ? { ca: options.ca, servername: options.servername?.replace(/:\d+$/, '').replace(/^\[|\]$/g, '') } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within ${options.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** `Basic <base64(user:password)>` */
export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Writes an htpasswd file with bcrypt entries, using the real `htpasswd -B -b` (apache2-utils). */
export async function writeHtpasswd(path: string, users: Record<string, string>): Promise<void> {
  let first = true;
  for (const [user, password] of Object.entries(users)) {
    await run('htpasswd', ['-B', '-b', ...(first ? ['-c'] : []), path, user, password], { timeoutMs: 20_000 });
    first = false;
  }
}

export interface TestCertificates {
  /** Folder holding `ca.crt` only, for `--cert-dir` and certs.d. */
  caDir: string;
  caPem: Buffer;
  certificate: string;
  key: string;
}

/**
 * A CA and a server certificate signed by it (P-256 keys, two days), made with the openssl CLI,
 * for the given DNS names and IP addresses.
 */
export async function makeCertificates(dir: string, names: { dns: string[]; ip: string[] }): Promise<TestCertificates> {
  await mkdir(join(dir, 'ca'), { recursive: true });
  const ossl = (args: string[]) => run('openssl', args, { cwd: dir, timeoutMs: 30_000 });
  const caKey = join(dir, 'ca.key');
  const caCrt = join(dir, 'ca', 'ca.crt');
  await ossl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', caKey, '-out', caCrt,
    '-days', '2', '-subj', '/CN=ocireg e2e test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const key = join(dir, 'server.key');
  const csr = join(dir, 'server.csr');
  const certificate = join(dir, 'server.crt');
  await ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${names.dns[0] ?? 'localhost'}`]);
  const san = [...names.dns.map((n) => `DNS:${n}`), ...names.ip.map((a) => `IP:${a}`)].join(', ');
  const ext = join(dir, 'server.ext');
  await writeFile(
    ext,
    [`subjectAltName = ${san}`, 'basicConstraints = CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = serverAuth', ''].join('\n'),
  );
  await ossl(['x509', '-req', '-in', csr, '-CA', caCrt, '-CAkey', caKey, '-CAcreateserial', '-out', certificate, '-days', '2', '-extfile', ext]);
  return { caDir: join(dir, 'ca'), caPem: readFileSync(caCrt), certificate, key };
}

/**
 * Makes a one-layer image `ref` in the docker daemon by `docker import` of a tar holding one
 * small file; returns the image id.
 */
export async function importImage(env: NodeJS.ProcessEnv, dir: string, ref: string, content: string): Promise<string> {
  const root = join(dir, 'rootfs');
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc', 'e2e.txt'), content);
  const tar = join(dir, 'image.tar');
  await run('tar', ['-C', root, '-cf', tar, '.'], { timeoutMs: 30_000 });
  await run('docker', ['import', tar, ref], { env, timeoutMs: 60_000 });
  return imageId(env, ref);
}

/** The daemon's image id (the config digest) of `ref`. */
export async function imageId(env: NodeJS.ProcessEnv, ref: string): Promise<string> {
  return (await run('docker', ['image', 'inspect', '-f', '{{.Id}}', ref], { env, timeoutMs: 30_000 })).stdout.trim();
}

/** Both output streams of a client run, for matching its messages. */
export function said(result: { stdout: string; stderr: string }): string {
  return `${result.stdout}\n${result.stderr}`;
}

/** Removes every image of the daemon whose reference starts with `prefix` (best effort). */
export async function removeImages(env: NodeJS.ProcessEnv, prefix: string): Promise<void> {
  const listed = await run('docker', ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}'], { env, allowFailure: true, timeoutMs: 30_000 });
  const ids = new Set<string>();
  for (const line of listed.stdout.split('\n')) {
    const [ref, id] = line.split(' ');
    if (ref?.startsWith(prefix) && id) ids.add(id);
  }
  for (const id of ids) await run('docker', ['rmi', '-f', id], { env, allowFailure: true, timeoutMs: 60_000 });
}
