// docker, skopeo and podman against the registry over HTTPS (http.tls), with a CA and a
// server certificate that this file makes with the openssl CLI, and htpasswd authentication.
//
// Docker treats every registry whose name resolves into 127.0.0.0/8 (localhost included) as
// insecure: it skips certificate verification there and never reads certs.d. So the registry
// listens on ::1 (or, where IPv6 is off, on a non-loopback address of this machine) under a name
// added to /etc/hosts for the duration of the file, and docker has to verify the certificate
// against /etc/docker/certs.d/<name:port>/ca.crt. Both are removed afterwards, also on failure.
import { existsSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../support/built-server.js';
import {
  httpGet,
  imageId,
  importImage,
  makeCertificates,
  removeImages,
  said,
  startConfiguredRegistry,
  writeHtpasswd,
  type ConfiguredRegistry,
  type TestCertificates,
} from './auth-support.js';
import { containersEnv, dockerEnv, logMark, run, serverFaults, tempFolder } from './harness.js';

const NAME = 'ocireg-e2e.test';
const HOSTS = '/etc/hosts';
const HOSTS_MARK = '# added by ocireg test/e2e/tls.test.ts';
const CERTS_D = '/etc/docker/certs.d';
const ALICE = 'alice-Tls-Secret';

let work: string;
let certs: TestCertificates;
let registry: ConfiguredRegistry;
let logStart = 0;
let dockerEnvironment: NodeJS.ProcessEnv;
/** What this file created under /etc/docker, in order of creation (the registry's own folder last). */
const createdDirs: string[] = [];

/** ::1 when this machine can listen there, else its first non-internal IPv4 address. */
async function listenAddress(): Promise<string> {
  try {
    await freePort('::1');
    return '::1';
  } catch {
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
    }
  }
  throw new Error('no address outside 127.0.0.0/8 to listen on (neither ::1 nor a non-loopback IPv4)');
}

function removeHostsEntry(): void {
  const text = readFileSync(HOSTS, 'utf8');
  const kept = text.split('\n').filter((line) => !line.includes(HOSTS_MARK));
  if (kept.length !== text.split('\n').length) writeFileSync(HOSTS, kept.join('\n'));
}

/** Removes the registry's certs.d folder, then the parents this file created if they are empty. */
function removeCertsD(): void {
  const [host, ...parents] = [...createdDirs].reverse();
  if (host !== undefined) rmSync(host, { recursive: true, force: true });
  for (const dir of parents) {
    try {
      rmdirSync(dir); // not recursive: dockerd may have written /etc/docker/key.json meanwhile
    } catch {
      // not empty, or gone
    }
  }
  createdDirs.length = 0;
}

/** Undoes the machine-wide changes even when the run is interrupted. */
const lastChance = () => {
  try {
    removeCertsD();
    removeHostsEntry();
  } catch {
    // best effort while exiting
  }
};

/** Makes /etc/docker/certs.d/<host>/ca.crt, remembering each folder it had to create. */
async function trustForDocker(host: string): Promise<void> {
  for (const dir of ['/etc/docker', CERTS_D]) {
    if (!existsSync(dir)) {
      await mkdir(dir);
      createdDirs.push(dir);
    }
  }
  // The host's own folder (its name has this run's port) is removed in any case.
  await mkdir(join(CERTS_D, host), { recursive: true });
  createdDirs.push(join(CERTS_D, host));
  await writeFile(join(CERTS_D, host, 'ca.crt'), certs.caPem);
}

beforeAll(async () => {
  work = await tempFolder('tls-', inject('e2eWork'));
  const address = await listenAddress();
  certs = await makeCertificates(join(work, 'pki'), { dns: [NAME, 'localhost'], ip: ['127.0.0.1', address] });
  const htpasswd = join(work, 'htpasswd');
  await writeHtpasswd(htpasswd, { alice: ALICE });
  process.once('exit', lastChance);
  removeHostsEntry(); // one left by an interrupted earlier run
  await writeFile(HOSTS, `${readFileSync(HOSTS, 'utf8').replace(/\n?$/, '\n')}${address} ${NAME} ${HOSTS_MARK}\n`);
  registry = await startConfiguredRegistry({
    work: join(work, 'registry'),
    listen: address,
    hostname: NAME,
    ca: certs.caPem,
    config: {
      http: { tls: { certificate: certs.certificate, key: certs.key, minimumtls: 'tls1.2' } },
      auth: { htpasswd: { realm: 'ocireg', path: htpasswd } },
      access: { repositories: { 'team-a/**': { users: { alice: ['pull', 'push', 'delete'] } } } },
    },
  });
  logStart = await logMark(registry.logFile);
  dockerEnvironment = await dockerEnv(inject('dockerHost'), work);
});

afterAll(async () => {
  try {
    removeCertsD();
    removeHostsEntry();
    process.removeListener('exit', lastChance);
    if (registry) {
      await removeImages(dockerEnvironment, `${registry.host}/`);
      await registry.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

/** An OCI layout with one small image, tagged v1, made by umoci. */
async function layoutWithImage(dir: string): Promise<string> {
  const layout = join(dir, 'layout');
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:v1`]);
  await writeFile(join(dir, 'e2e.txt'), 'over TLS\n');
  await run('umoci', ['insert', '--image', `${layout}:v1`, join(dir, 'e2e.txt'), '/etc/e2e.txt']);
  return layout;
}

describe('TLS (http.tls)', () => {
  it('answers only over TLS with a certificate of the test CA, and a client without the CA is refused', async () => {
    const overTls = await httpGet(`${registry.url}/v2/`, { ca: certs.caPem });
    expect(overTls.status).toBe(401);
    const plain = await httpGet(`http://${registry.host}/v2/`, { timeoutMs: 5_000 }).catch((err: Error) => err);
    if (!(plain instanceof Error)) expect(plain.status, 'a plain-HTTP request to the TLS port').toBe(400);

    // Before anything trusts the CA (skopeo also reads /etc/docker/certs.d).
    const skopeo = await run('skopeo', ['inspect', '--tls-verify=true', '--creds', `alice:${ALICE}`, `docker://${registry.host}/team-a/none:v1`], {
      allowFailure: true,
      timeoutMs: 60_000,
    });
    expect(skopeo.code, said(skopeo)).not.toBe(0);
    expect(said(skopeo)).toMatch(/x509|certificate/i);
  });

  it('skopeo copies in and out with --cert-dir and --tls-verify=true', async () => {
    const dir = await tempFolder('s-', work);
    const layout = await layoutWithImage(dir);
    const dest = `docker://${registry.host}/team-a/tls-skopeo:v1`;
    const creds = `alice:${ALICE}`;
    const digestFile = join(dir, 'digest');
    await run('skopeo', ['copy', '--dest-tls-verify=true', '--dest-cert-dir', certs.caDir, '--dest-creds', creds, '--digestfile', digestFile, `oci:${layout}:v1`, dest], {
      timeoutMs: 120_000,
    });
    const digest = (await readFile(digestFile, 'utf8')).trim();
    await run('skopeo', ['copy', '--src-tls-verify=true', '--src-cert-dir', certs.caDir, '--src-creds', creds, dest, `oci:${join(dir, 'out')}:v1`], {
      timeoutMs: 120_000,
    });
    const index = JSON.parse(await readFile(join(dir, 'out', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    expect(index.manifests.map((m) => m.digest)).toEqual([digest]);
  });

  it('podman logs in, pushes and pulls with --cert-dir and --tls-verify=true', async () => {
    const dir = await tempFolder('p-', work);
    const { env, podman } = await containersEnv(dir);
    const pod = (args: string[]) => run('podman', [...podman, ...args], { env, timeoutMs: 120_000 });
    const tls = ['--tls-verify=true', '--cert-dir', certs.caDir];
    const ref = `${registry.host}/team-a/tls-podman:v1`;
    await pod(['login', ...tls, '-u', 'alice', '-p', ALICE, registry.host]);
    const rootfs = join(dir, 'rootfs');
    await mkdir(join(rootfs, 'etc'), { recursive: true });
    await writeFile(join(rootfs, 'etc', 'e2e.txt'), 'podman over TLS\n');
    await run('tar', ['-C', rootfs, '-cf', join(dir, 'image.tar'), '.']);
    await pod(['import', join(dir, 'image.tar'), ref]);
    await pod(['push', ...tls, '--digestfile', join(dir, 'digest'), ref]);
    const digest = (await readFile(join(dir, 'digest'), 'utf8')).trim();
    await pod(['rmi', '-f', ref]);
    await pod(['pull', ...tls, ref]);
    expect((await pod(['image', 'inspect', '--format', '{{.Digest}}', ref])).stdout.trim()).toBe(digest);
  });

  it('docker refuses the registry until its CA is in certs.d, then logs in, pushes and pulls over HTTPS', async () => {
    const env = dockerEnvironment;
    const untrusted = await run('docker', ['login', '-u', 'alice', '-p', ALICE, registry.host], { env, allowFailure: true, timeoutMs: 60_000 });
    expect(untrusted.code, said(untrusted)).not.toBe(0);
    expect(said(untrusted)).toMatch(/x509|certificate/i);

    await trustForDocker(registry.host);
    const login = await run('docker', ['login', '-u', 'alice', '-p', ALICE, registry.host], { env, allowFailure: true, timeoutMs: 60_000 });
    expect(login.code, said(login)).toBe(0);

    const ref = `${registry.host}/team-a/tls-docker:v1`;
    const id = await importImage(env, await tempFolder('img-', work), ref, `docker over TLS ${Date.now()}\n`);
    await run('docker', ['push', ref], { env, timeoutMs: 120_000 });
    await run('docker', ['rmi', '-f', id], { env, timeoutMs: 60_000 });
    await run('docker', ['pull', ref], { env, timeoutMs: 120_000 });
    expect(await imageId(env, ref)).toBe(id);
  });

  it('left no server errors in the registry log', async () => {
    expect(await serverFaults(registry.logFile, logStart)).toEqual([]);
  });
});
