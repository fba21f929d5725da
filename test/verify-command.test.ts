// `ocireg verify [--repair] [--repository R] [config]`, run in-process over a data folder that a
// registry wrote and that was then damaged: what it prints, what it mends, its exit codes.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/config.js';
import { runVerifyCommand } from '../src/verify-command.js';
import { makeImage, pushBlob, putManifest, type BuiltManifest } from './helpers.js';
import { freePort } from './support/built-server.js';
import { createTestDatabase, describeWithPostgres, type TestDatabase } from './support/postgres.js';

const REPO = 'team/app';
const OTHER = 'other/app';

let dir: string;
let configPath: string;
let image: BuiltManifest;
let other: BuiltManifest;

function capture() {
  const out = { stdout: '', stderr: '' };
  return { out, io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t) } };
}

async function run(args: string[]) {
  const { out, io } = capture();
  const code = await runVerifyCommand(args, io);
  return { code, ...out, lines: out.stdout.split('\n').filter((l) => l !== '') };
}

/** Pushes an image into each of two repositories through a registry on the configuration, then closes it. */
async function pushImages(): Promise<void> {
  const app = await buildApp(loadConfig({ env: {}, path: configPath }), { logger: false });
  try {
    image = await makeImage(app, REPO, { layer: 'app' });
    expect((await putManifest(app, REPO, 'v1', image)).statusCode).toBe(201);
    other = await makeImage(app, OTHER, { layer: 'other' });
    expect((await putManifest(app, OTHER, 'latest', other)).statusCode).toBe(201);
  } finally {
    await app.close();
  }
}

function blobPath(digest: string): string {
  const [algorithm, hex] = digest.split(':') as [string, string];
  return join(dir, 'data', 'blobs', algorithm, hex.slice(0, 2), hex);
}

function layerOf(m: BuiltManifest): string {
  return (JSON.parse(m.body.toString()) as { layers: Array<{ digest: string }> }).layers[0]!.digest;
}

const SUMMARY = /^checked \d+ blobs \(\d+ bytes\), \d+ manifests?, \d+ links?, \d+ tags?: \d+ problems?, \d+ repaired\n$/;

describe('ocireg verify', () => {
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ocireg-verify-cli-'));
    configPath = join(dir, 'config.yml');
    await writeFile(configPath, stringify({ storage: { filesystem: { rootdirectory: join(dir, 'data') }, maintenance: { gc: { enabled: false } } } }));
    await pushImages();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints nothing but the summary for a registry left alone, and exits 0', async () => {
    const r = await run([configPath]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    // Not a terminal: no progress line, only the summary.
    expect(r.stderr).toBe('checked 6 blobs (' + r.stderr.match(/\((\d+) bytes\)/)![1] + ' bytes), 2 manifests, 4 links, 2 tags: 0 problems, 0 repaired\n');
    expect(r.stderr).toMatch(SUMMARY);
  });

  it('prints one line per problem and exits 1, with --repair too; a repaired registry then exits 0', async () => {
    const layer = layerOf(image);
    const original = await readFile(blobPath(layer));
    const flipped = Buffer.from(original);
    flipped[0] = flipped[0]! ^ 0xff;
    await writeFile(blobPath(layer), flipped);
    await rm(join(dir, 'data', 'repositories', OTHER, '_tags', 'latest'));

    const found = await run([configPath]);
    expect(found.code).toBe(1);
    expect(found.lines).toHaveLength(2);
    expect(found.lines[0]!.split('\t')).toEqual(['corrupt', layer, expect.stringContaining('hash to sha256:'), `affects ${REPO}:v1`]);
    expect(found.lines[1]!.split('\t')).toEqual([
      'tag-missing',
      `repositories/${OTHER}/_tags/latest`,
      `${OTHER}:latest points at ${other.digest}, but the store has no tag link`,
      `affects ${OTHER}:latest`,
    ]);
    expect(found.stderr).toMatch(/: 2 problems, 0 repaired\n$/);

    const repaired = await run(['--repair', configPath]);
    expect(repaired.code).toBe(1);
    expect(repaired.lines[0]).toMatch(/^corrupt\t.*quarantined as quarantine\/sha256\/[0-9a-f]{64}\.\d+/);
    expect(repaired.stderr).toMatch(/: 4 problems, 2 repaired\n$/);
    expect(await readFile(join(dir, 'data', 'repositories', OTHER, '_tags', 'latest'), 'utf8')).toBe(other.digest);

    // The image whose layer went stays broken until it is pushed again.
    const after = await run([configPath]);
    expect(after.code).toBe(1);
    expect(after.lines.map((l) => l.split('\t')[0])).toEqual(['broken', 'link-not-indexed']);
    // Pushed again, the layer mends it.
    const app = await buildApp(loadConfig({ env: {}, path: configPath }), { logger: false });
    expect(await pushBlob(app, REPO, original)).toBe(layer);
    await app.close();
    const clean = await run([configPath]);
    expect(clean.stdout).toBe('');
    expect(clean.code).toBe(0);
  });

  it('with --repository looks at that repository only', async () => {
    await rm(blobPath(layerOf(other)));
    const mine = await run(['--repository', REPO, configPath]);
    expect(mine.code).toBe(0);
    expect(mine.stderr).toMatch(/^checked 3 blobs .*, 1 manifest, 2 links, 1 tag: 0 problems, 0 repaired\n$/);
    const theirs = await run(['--repository', OTHER, configPath]);
    expect(theirs.code).toBe(1);
    expect(theirs.lines).toEqual([expect.stringMatching(new RegExp(`^missing\t${layerOf(other)}\t.*\taffects ${OTHER}:latest$`))]);
    const unknown = await run(['--repository', 'no/such', configPath]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('no repository named "no/such"\n');
  });

  it('refuses bad arguments (2), a missing configuration and --repair on a read-only registry (1)', async () => {
    for (const args of [['--nope', configPath], [configPath, 'extra'], ['--repository', 'Not A Name', configPath], ['--repository']]) {
      const r = await run(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('Usage:');
      expect(r.stdout).toBe('');
    }
    const missing = await run([join(dir, 'absent.yml')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).not.toBe('');
    const readOnly = join(dir, 'ro.yml');
    await writeFile(readOnly, stringify({ storage: { filesystem: { rootdirectory: join(dir, 'data') }, maintenance: { readonly: { enabled: true } } } }));
    const refused = await run(['--repair', readOnly]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('read-only');
    expect((await run([readOnly])).code).toBe(0);
  });

  it('prints one line and exits 1 when the index cannot be opened', async () => {
    const port = await freePort();
    const unreachable = join(dir, 'pg.yml');
    await writeFile(
      unreachable,
      stringify({
        storage: { filesystem: { rootdirectory: join(dir, 'data'), shared: true } },
        index: { driver: 'postgres', postgres: { url: `postgres://ocireg:S3cret-pw@127.0.0.1:${port}/nowhere` } },
      }),
    );
    const r = await run([unreachable]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toContain('S3cret-pw');
  });
});

describeWithPostgres('ocireg verify over PostgreSQL', () => {
  let database: TestDatabase;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ocireg-verify-pg-'));
    database = await createTestDatabase();
    configPath = join(dir, 'config.yml');
    await writeFile(
      configPath,
      stringify({
        storage: { filesystem: { rootdirectory: join(dir, 'data'), shared: true }, maintenance: { gc: { enabled: false } } },
        index: { driver: 'postgres', postgres: { url: database.url, poolsize: 2 } },
      }),
    );
    await pushImages();
  });
  afterEach(async () => {
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('finds, repairs and then passes', async () => {
    expect((await run([configPath])).code).toBe(0);
    const layer = layerOf(other);
    await rm(join(dir, 'data', 'repositories', OTHER, '_layers', ...layer.split(':')));
    await writeFile(join(dir, 'data', 'repositories', REPO, '_tags', 'v1'), other.digest);
    const found = await run([configPath]);
    expect(found.code).toBe(1);
    expect(found.lines.map((l) => l.split('\t').slice(0, 2).join(' '))).toEqual([
      `link-missing repositories/${OTHER}/_layers/sha256/${layer.slice(7)}`,
      `tag-mismatch repositories/${REPO}/_tags/v1`,
    ]);
    const repaired = await run(['--repair', '--repository', OTHER, configPath]);
    expect(repaired.code).toBe(1);
    expect(repaired.stderr).toMatch(/: 1 problem, 1 repaired\n$/);
    expect((await run(['--repair', configPath])).stderr).toMatch(/: 1 problem, 1 repaired\n$/);
    const clean = await run([configPath]);
    expect(clean.code).toBe(0);
    expect(clean.stderr).toMatch(SUMMARY);
  });
});
