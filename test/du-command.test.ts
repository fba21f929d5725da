// `ocireg du [NAME] [config]`, run in-process over a data folder that a registry (SQLite) wrote:
// two repositories sharing a layer, one with blobs but no manifest, and a blob no manifest uses.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/config.js';
import { runDuCommand } from '../src/du-command.js';
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, manifestOf, pushBlob, putManifest, type BuiltManifest } from './helpers.js';

let dir: string;
let configPath: string;
/** The bytes of everything pushed, by name. */
const size: Record<string, number> = {};

const SHARED = Buffer.alloc(3000, 's'); // 2.9 KiB
const BIG = Buffer.alloc(1536 * 1024, 'b'); // 1.5 MiB

/** Pushes a config (its text) and the layers, and a manifest over them under `tag`. */
async function pushImage(app: FastifyInstance, repo: string, tag: string, config: string, layers: Buffer[]): Promise<BuiltManifest> {
  const configBytes = Buffer.from(config);
  const configDigest = await pushBlob(app, repo, configBytes);
  const layerRefs = [];
  for (const layer of layers) layerRefs.push({ mediaType: OCI_LAYER, digest: await pushBlob(app, repo, layer), size: layer.length });
  const manifest = manifestOf(
    { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: configDigest, size: configBytes.length }, layers: layerRefs },
    OCI_MANIFEST,
  );
  expect((await putManifest(app, repo, tag, manifest)).statusCode).toBe(201);
  return manifest;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocireg-du-cli-'));
  const data = join(dir, 'data');
  configPath = join(dir, 'config.yml');
  await writeFile(configPath, stringify({ storage: { filesystem: { rootdirectory: data } } }));
  const app = await buildApp(loadConfig({ env: {}, path: configPath }), { logger: false });
  try {
    size.configA = Buffer.byteLength('{"image":"a"}');
    size.configB = Buffer.byteLength('{"image":"b"}');
    size.shared = SHARED.length;
    size.big = BIG.length;
    size.manifestA = (await pushImage(app, 'a/one', 'v1', '{"image":"a"}', [SHARED])).body.length;
    size.manifestB1 = (await pushImage(app, 'b/two', 'v1', '{"image":"b"}', [SHARED])).body.length;
    size.manifestB2 = (await pushImage(app, 'b/two', 'v2', '{"image":"b"}', [BIG])).body.length;
    // Held by no manifest: counted nowhere.
    await pushBlob(app, 'a/one', 'an upload no manifest uses');
    await pushBlob(app, 'c/empty', 'a blob in a repository without manifests');
  } finally {
    await app.close();
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function capture() {
  const out = { stdout: '', stderr: '' };
  return { out, io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t) } };
}

async function du(...argv: string[]): Promise<{ code: number; lines: string[][]; stdout: string; stderr: string }> {
  const { out, io } = capture();
  const code = await runDuCommand(argv, io);
  const lines = out.stdout === '' ? [] : out.stdout.trimEnd().split('\n').map((l) => l.trim().split(/\s{2,}/));
  return { code, lines, stdout: out.stdout, stderr: out.stderr };
}

const HEADER = ['REPOSITORY', 'MANIFESTS', 'BLOBS', 'SIZE', 'UNIQUE', 'SHARED'];

describe('ocireg du', () => {
  it('prints every repository and a TOTAL counting a shared blob once (--bytes)', async () => {
    const a = size.manifestA! + size.configA! + size.shared!;
    const b = size.manifestB1! + size.manifestB2! + size.configB! + size.shared! + size.big!;
    const result = await du('--bytes', configPath);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.lines).toEqual([
      HEADER,
      ['a/one', '1', '3', String(a), String(a - size.shared!), String(size.shared)],
      ['b/two', '2', '5', String(b), String(b - size.shared!), String(size.shared)],
      ['c/empty', '0', '0', '0', '0', '0'],
      ['TOTAL', '3', '7', String(a + b - size.shared!), String(a + b - 2 * size.shared!), String(size.shared)],
    ]);
    // Aligned columns: every line as long as the header.
    const widths = new Set(result.stdout.trimEnd().split('\n').map((l) => l.length));
    expect(widths.size).toBe(1);
  });

  it('prints human sizes by default (bytes, KiB, MiB with one decimal)', async () => {
    const result = await du(configPath);
    expect(result.code).toBe(0);
    const a = size.manifestA! + size.configA! + size.shared!;
    expect(result.lines[1]).toEqual(['a/one', '1', '3', `${(a / 1024).toFixed(1)} KiB`, `${a - size.shared!} bytes`, '2.9 KiB']);
    expect(result.lines[2]![3]).toBe('1.5 MiB');
    expect(result.lines[3]).toEqual(['c/empty', '0', '0', '0 bytes', '0 bytes', '0 bytes']);
  });

  it('prints one repository, without a total, however the configuration is named', async () => {
    const expected = [HEADER, ['a/one', '1', '3', String(size.manifestA! + size.configA! + size.shared!), String(size.manifestA! + size.configA!), String(size.shared)]];
    for (const argv of [
      ['a/one', configPath, '--bytes'],
      ['--bytes', '--config', configPath, 'a/one'],
      ['a/one', '--config', configPath, '--bytes'],
    ]) {
      const result = await du(...argv);
      expect(result.code, argv.join(' ')).toBe(0);
      expect(result.lines).toEqual(expected);
    }
    expect((await du('c/empty', configPath)).lines).toEqual([HEADER, ['c/empty', '0', '0', '0 bytes', '0 bytes', '0 bytes']]);
  });

  it('says so when NAME is not a repository (exit 1)', async () => {
    for (const name of ['no/such', 'Not A Name']) {
      const result = await du(name, configPath);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(`no repository named ${JSON.stringify(name)}\n`);
    }
  });

  it('refuses bad arguments (exit 2) with the usage', async () => {
    for (const argv of [['--human'], ['a/one', configPath, 'extra'], ['--config', configPath, 'a/one', 'b/two'], ['--config']]) {
      const result = await du(...argv);
      expect(result.code, argv.join(' ')).toBe(2);
      expect(result.stderr).toContain('Usage:\n  du [NAME]');
      expect(result.stdout).toBe('');
    }
  });

  it('reports a configuration or an index it cannot read on one line (exit 1)', async () => {
    const missing = await du('--config', join(dir, 'missing.yml'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^cannot read configuration file .*missing\.yml: .*\n$/);

    const bad = join(dir, 'bad.yml');
    await writeFile(bad, 'storage:\n  maintenance:\n    gc:\n      every: 1h\n');
    expect((await du(bad)).code).toBe(1);

    // The index file is a folder: the index cannot be opened.
    const broken = join(dir, 'broken');
    await mkdir(join(broken, 'index.db'), { recursive: true });
    const brokenConfig = join(dir, 'broken.yml');
    await writeFile(brokenConfig, stringify({ storage: { filesystem: { rootdirectory: broken } } }));
    const unopened = await du(brokenConfig);
    expect(unopened.code).toBe(1);
    expect(unopened.stderr).toMatch(/^cannot open the index .*index\.db: [^\n]*\n$/);
  });

  it('prints only the header and a zero TOTAL for an empty registry', async () => {
    const empty = join(dir, 'empty.yml');
    await writeFile(empty, stringify({ storage: { filesystem: { rootdirectory: join(dir, 'empty') } } }));
    expect((await du('--bytes', empty)).lines).toEqual([HEADER, ['TOTAL', '0', '0', '0', '0', '0']]);
  });
});
