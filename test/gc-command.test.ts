// `ocireg gc [--dry-run] [--delete-untagged] [config]`, run in-process over a data folder that a
// registry wrote (and beside a registry still running on it): what it prints and removes, and how
// it refuses bad use.
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/config.js';
import { runGcCommand } from '../src/gc-command.js';
import { makeImage, putManifest, type BuiltManifest } from './helpers.js';

const REPO = 'team/app';

let dir: string;
let configPath: string;
let app: FastifyInstance;
let tagged: BuiltManifest;
let untagged: BuiltManifest;

function fileConfig(gc: Record<string, unknown> = { delay: '0s' }, extra: Record<string, unknown> = {}) {
  return { storage: { filesystem: { rootdirectory: join(dir, 'data') }, maintenance: { gc: { enabled: false, ...gc } }, ...extra } };
}

function capture() {
  const out = { stdout: '', stderr: '' };
  return { out, io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t) } };
}

/** Bytes of every file under the data folder's blobs/. */
async function blobBytes(): Promise<number> {
  let total = 0;
  const walk = async (path: string): Promise<void> => {
    for (const entry of await readdir(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) await walk(child);
      else total += (await stat(child)).size;
    }
  };
  await walk(join(dir, 'data', 'blobs'));
  return total;
}

const head = (m: BuiltManifest) => app.inject({ method: 'HEAD', url: `/v2/${REPO}/manifests/${m.digest}` });

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocireg-gc-cli-'));
  configPath = join(dir, 'config.yml');
  await writeFile(configPath, stringify(fileConfig()));
  // The registry keeps running beside the command (SQLite: another connection to the same file).
  app = await buildApp(loadConfig({ env: {}, path: configPath }), { logger: false });
  tagged = await makeImage(app, REPO, { layer: 'kept' });
  expect((await putManifest(app, REPO, 'v1', tagged)).statusCode).toBe(201);
  untagged = await makeImage(app, REPO, { layer: 'loose' });
  expect((await putManifest(app, REPO, untagged.digest, untagged)).statusCode).toBe(201);
});
afterEach(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

describe('ocireg gc', () => {
  it('removes nothing that a manifest uses, without --delete-untagged', async () => {
    const before = await blobBytes();
    const { out, io } = capture();
    expect(await runGcCommand([configPath], io)).toBe(0);
    expect(out.stdout).toMatch(/^removed 0 manifests and 0 blobs \(0 bytes\) in \d+\.\d s\n$/);
    expect(await blobBytes()).toBe(before);
    expect((await head(untagged)).statusCode).toBe(200);
  });

  it('--dry-run --delete-untagged says what would go and changes nothing; --delete-untagged removes it', async () => {
    const before = await blobBytes();
    const alone = untagged.body.length + JSON.stringify({ architecture: 'amd64', os: 'linux', layer: 'loose' }).length + 'layer:loose'.length;
    const dry = capture();
    expect(await runGcCommand(['--dry-run', '--delete-untagged', configPath], dry.io)).toBe(0);
    expect(dry.out.stdout).toMatch(new RegExp(`^would remove 1 manifest and 3 blobs \\(${alone} bytes\\)`));
    expect(await blobBytes()).toBe(before);
    expect((await head(untagged)).statusCode).toBe(200);

    const real = capture();
    expect(await runGcCommand(['--delete-untagged', configPath], real.io)).toBe(0);
    expect(real.out.stdout).toMatch(new RegExp(`^removed 1 manifest and 3 blobs \\(${alone} bytes\\)`));
    expect(await blobBytes()).toBe(before - alone);
    // The running registry sees it at once; the tagged image is whole.
    expect((await head(untagged)).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: `/v2/${REPO}/manifests/v1` })).statusCode).toBe(200);
  });

  it('takes deleteuntagged from the configuration, and keeps what is newer than the delay', async () => {
    await writeFile(configPath, stringify(fileConfig({ delay: '1h', deleteuntagged: true })));
    const { out, io } = capture();
    expect(await runGcCommand([configPath], io)).toBe(0);
    expect(out.stdout).toMatch(/^removed 0 manifests and 0 blobs/);
    await writeFile(configPath, stringify(fileConfig({ delay: '0s', deleteuntagged: true })));
    const again = capture();
    expect(await runGcCommand([configPath], again.io)).toBe(0);
    expect(again.out.stdout).toMatch(/^removed 1 manifest and 3 blobs/);
  });

  it('refuses bad arguments (2), a bad configuration and a read-only registry (1)', async () => {
    const bad = capture();
    expect(await runGcCommand(['--nope'], bad.io)).toBe(2);
    expect(bad.out.stderr).toContain('Usage:');
    expect(await runGcCommand([configPath, 'extra'], capture().io)).toBe(2);

    const missing = capture();
    expect(await runGcCommand([join(dir, 'absent.yml')], missing.io)).toBe(1);
    expect(missing.out.stderr).not.toBe('');

    const readOnlyPath = join(dir, 'ro.yml');
    await writeFile(readOnlyPath, stringify({ storage: { filesystem: { rootdirectory: join(dir, 'data') }, maintenance: { readonly: { enabled: true } } } }));
    const ro = capture();
    expect(await runGcCommand([readOnlyPath], ro.io)).toBe(1);
    expect(ro.out.stderr).toContain('read-only');
    expect(await runGcCommand(['--dry-run', readOnlyPath], capture().io)).toBe(0);
  });
});
