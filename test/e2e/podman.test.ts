// podman (4.3) and buildah (1.28) from Debian against the built registry, each with a private store.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { containersEnv, fetchManifest, logMark, run, serverFaults, sha256, sha256File, tempFolder, writeRandomFile } from './harness.js';

const registryUrl = inject('registryUrl');
const host = inject('registryHost');
const logFile = inject('registryLog');

let work: string;
/** Where the shared registry log stood when this file began. */
let logStart: number;

/** A build context FROM scratch with three files (one layer each); returns their sha256 by path. */
async function context(dir: string, label: string): Promise<Record<string, string>> {
  await mkdir(dir, { recursive: true });
  const sums: Record<string, string> = {};
  sums['/data/blob.bin'] = await writeRandomFile(join(dir, 'blob.bin'), 4 * 1024 * 1024);
  const note = `built by ${label}\n`;
  await writeFile(join(dir, 'note.txt'), note);
  sums['/etc/note.txt'] = sha256(note);
  const json = `{"builder":"${label}"}\n`;
  await writeFile(join(dir, 'app.json'), json);
  sums['/app/app.json'] = sha256(json);
  await writeFile(
    join(dir, 'Containerfile'),
    ['FROM scratch', 'COPY blob.bin /data/blob.bin', 'COPY note.txt /etc/note.txt', 'COPY app.json /app/app.json', ''].join('\n'),
  );
  return sums;
}

/** The digest that `--digestfile` recorded. */
async function digestIn(file: string): Promise<string> {
  return (await readFile(file, 'utf8')).trim();
}

beforeAll(async () => {
  logStart = await logMark(logFile);
  work = await tempFolder('p-', inject('e2eWork')); // short: podman wants a runroot under 50 characters
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('podman and buildah', () => {
  it('podman builds an image from scratch, pushes it, removes it, pulls it, and reads the same content', async () => {
    const dir = join(work, 'pd');
    const { env, podman } = await containersEnv(dir);
    const pod = (args: string[], timeoutMs = 180_000) => run('podman', [...podman, ...args], { env, timeoutMs });
    const sums = await context(join(dir, 'ctx'), 'podman');
    const ref = `${host}/e2e/podman-app:v1`;

    await pod(['build', '--network', 'none', '-t', ref, '-f', join(dir, 'ctx', 'Containerfile'), join(dir, 'ctx')], 300_000);
    await pod(['push', '--tls-verify=false', '--digestfile', join(dir, 'digest'), ref]);
    const digest = await digestIn(join(dir, 'digest'));
    const stored = await fetchManifest(registryUrl, 'e2e/podman-app', 'v1');
    expect(stored.status).toBe(200);
    expect(stored.digest).toBe(digest);
    expect((JSON.parse(stored.body.toString()) as { layers: unknown[] }).layers).toHaveLength(3);

    await pod(['rmi', '-f', ref]);
    expect((await run('podman', [...podman, 'image', 'exists', ref], { env, allowFailure: true })).code).not.toBe(0);
    await pod(['pull', '--tls-verify=false', ref]);

    const container = (await pod(['create', ref, '/not-run'])).stdout.trim();
    const out = join(dir, 'out');
    await mkdir(out);
    const read: Record<string, string> = {};
    for (const [i, path] of Object.keys(sums).entries()) {
      await pod(['cp', `${container}:${path}`, join(out, String(i))]);
      read[path] = await sha256File(join(out, String(i)));
    }
    await pod(['rm', container]);
    expect(read).toEqual(sums);
  });

  it('buildah builds an image from scratch, pushes it, removes it, pulls it, and reads the same content', async () => {
    const dir = join(work, 'bh');
    const { env, storage } = await containersEnv(dir);
    const buildah = (args: string[], timeoutMs = 180_000) => run('buildah', [...storage, ...args], { env, timeoutMs });
    const sums = await context(join(dir, 'ctx'), 'buildah');
    const ref = `${host}/e2e/buildah-app:v1`;

    await buildah(['bud', '--layers', '-t', ref, '-f', join(dir, 'ctx', 'Containerfile'), join(dir, 'ctx')], 300_000);
    await buildah(['push', '--tls-verify=false', '--digestfile', join(dir, 'digest'), ref, `docker://${ref}`]);
    const digest = await digestIn(join(dir, 'digest'));
    expect((await fetchManifest(registryUrl, 'e2e/buildah-app', 'v1', 'HEAD')).digest).toBe(digest);

    await buildah(['rmi', '-f', ref]);
    expect((await run('buildah', [...storage, 'inspect', '--type', 'image', ref], { env, allowFailure: true })).code).not.toBe(0);
    await buildah(['pull', '--tls-verify=false', ref]);

    // Read the files through a working container's root (vfs: a plain folder, no mount needed).
    const container = (await buildah(['from', ref])).stdout.trim();
    const root = (await buildah(['mount', container])).stdout.trim();
    const read: Record<string, string> = {};
    for (const path of Object.keys(sums)) read[path] = await sha256File(join(root, path));
    await buildah(['umount', container]);
    await buildah(['rm', container]);
    expect(read).toEqual(sums);
  });

  it('left no server errors in the registry log', async () => {
    expect(await serverFaults(logFile, logStart)).toEqual([]);
  });
});
