// Verification of the store against the index, over a registry that pushed real images (the
// filesystem store in a temporary folder and its SQLite index), damaged behind its back.
import { readFile, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verify, formatProblem, type VerifyOptions, type VerifyProblem } from '../../src/maintenance/verify.js';
import { Digest } from '../../src/oci/digest.js';
import { RegistryError } from '../../src/oci/errors.js';
import { SqliteIndex } from '../../src/index/sqlite/index.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { OCI_INDEX, digestOf, makeImage, manifestOf, putManifest, startRegistry, type BuiltManifest, type TestRegistry } from '../helpers.js';

const REPO = 'team/app';
const OTHER = 'other/app';
const NOW = 1_700_000_000_000;

let reg: TestRegistry;
let image: BuiltManifest;
let index: BuiltManifest;
let other: BuiltManifest;

function blobPath(digest: string): string {
  const [algorithm, hex] = digest.split(':') as [string, string];
  return join(reg.root, 'blobs', algorithm, hex.slice(0, 2), hex);
}

function linkPath(repo: string, digest: string): string {
  return join(reg.root, 'repositories', repo, '_layers', ...digest.split(':'));
}

function layersOf(m: BuiltManifest): { config: string; layer: string } {
  const doc = JSON.parse(m.body.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
  return { config: doc.config.digest, layer: doc.layers[0]!.digest };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
}

/** Runs verify over the registry's own store and index (or another store), collecting the problems. */
async function check(options: VerifyOptions = {}, store: BlobStore = reg.app.registry.store) {
  const problems: VerifyProblem[] = [];
  const { database } = reg.app.registry;
  const report = await verify(store, database.registry, database.gc, { now: () => NOW, ...options, onProblem: (p) => problems.push(p) });
  return { report, problems, kinds: problems.map((p) => `${p.kind} ${p.subject}`) };
}

const gc = () => reg.app.registry.database.gc;
const headBlob = (repo: string, digest: string) => reg.app.inject({ method: 'HEAD', url: `/v2/${repo}/blobs/${digest}` });

beforeEach(async () => {
  reg = await startRegistry({ storage: { maintenance: { gc: { enabled: false } } } });
  image = await makeImage(reg.app, REPO, { layer: 'app' });
  expect((await putManifest(reg.app, REPO, 'v1', image)).statusCode).toBe(201);
  index = manifestOf(
    { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: image.mediaType, digest: image.digest, size: image.body.length }] },
    OCI_INDEX,
  );
  expect((await putManifest(reg.app, REPO, 'multi', index)).statusCode).toBe(201);
  other = await makeImage(reg.app, OTHER, { layer: 'other' });
  expect((await putManifest(reg.app, OTHER, other.digest, other)).statusCode).toBe(201);
});
afterEach(async () => {
  await reg.destroy();
});

describe('verify', () => {
  it('finds nothing wrong with a registry left alone, and counts what it checked', async () => {
    const { report, problems } = await check();
    expect(problems).toEqual([]);
    // Blobs: two configs, two layers, three manifests; links: two per image.
    const bytes = image.body.length + index.body.length + other.body.length;
    expect(report).toMatchObject({ blobs: 7, manifests: 3, links: 4, tags: 2, problems: 0, repaired: 0 });
    expect(report.bytes).toBeGreaterThan(bytes);
    expect(await check({ repair: true })).toMatchObject({ problems: [], report: { repaired: 0 } });
  });

  it('finds a flipped byte in a layer, names the images using it, and with repair quarantines it', async () => {
    const { layer } = layersOf(image);
    const original = await readFile(blobPath(layer));
    const flipped = Buffer.from(original);
    flipped[0] = flipped[0]! ^ 0x01;
    await writeFile(blobPath(layer), flipped);

    const found = await check();
    expect(found.kinds).toEqual([`corrupt ${layer}`]);
    const [problem] = found.problems;
    expect(problem!.detail).toContain(`hash to ${digestOf(flipped)}`);
    // The image, and the index of its repository that lists it.
    expect(problem!.affects).toEqual([`${REPO}:v1`, `${REPO}:multi`]);
    expect(formatProblem(problem!)).toBe(`corrupt\t${layer}\t${problem!.detail}\taffects ${REPO}:v1, ${REPO}:multi`);
    expect(await exists(blobPath(layer))).toBe(true);

    const repaired = await check({ repair: true });
    const quarantined = `quarantine/sha256/${layer.slice(7)}.${NOW}`;
    expect(repaired.kinds[0]).toBe(`corrupt ${layer}`);
    expect(repaired.problems[0]!.repaired).toBe(true);
    expect(repaired.problems[0]!.detail).toContain(`quarantined as ${quarantined}`);
    expect(await readFile(join(reg.root, quarantined))).toEqual(flipped);
    expect(await exists(blobPath(layer))).toBe(false);
    await expect(reg.app.registry.blobs.open(Digest.parse(layer), undefined)).rejects.toSatisfy(
      (err: unknown) => err instanceof RegistryError && err.code === 'BLOB_UNKNOWN',
    );
    expect((await headBlob(REPO, layer)).statusCode).toBe(404);
    expect(await gc().blobState(layer)).toBeUndefined();
    // The same run then finds the image broken (its layer is gone); the store's link stays for a push again.
    expect(repaired.kinds.slice(1)).toEqual([`broken ${image.digest}`, `link-not-indexed repositories/${REPO}/_layers/sha256/${layer.slice(7)}`]);
    expect(repaired.report).toMatchObject({ problems: 3, repaired: 1 });

    const after = await check();
    expect(after.kinds).toEqual([`broken ${image.digest}`, `link-not-indexed repositories/${REPO}/_layers/sha256/${layer.slice(7)}`]);
    expect(after.problems[0]!.affects).toEqual([`${REPO}:v1`, `${REPO}:multi`]);
  });

  it('leaves a corrupt blob where it is when the store cannot move objects', async () => {
    const { layer } = layersOf(image);
    await writeFile(blobPath(layer), 'not the layer');
    const store = reg.app.registry.store;
    const noMove: BlobStore = Object.create(store, { move: { value: undefined } });
    const { problems, report } = await check({ repair: true }, noMove);
    expect(problems[0]).toMatchObject({ kind: 'corrupt', subject: layer, repaired: false });
    expect(problems[0]!.detail).toContain('not quarantined: this store cannot move objects');
    expect(report.repaired).toBe(0);
    expect(await gc().blobState(layer)).toBeDefined();
  });

  it('finds a blob removed from disk; repair forgets it and names the broken image', async () => {
    const { config } = layersOf(other);
    await rm(blobPath(config));
    const found = await check();
    expect(found.kinds).toEqual([`missing ${config}`]);
    expect(found.problems[0]!.affects).toEqual([`${OTHER}@${other.digest}`]);

    const repaired = await check({ repair: true });
    expect(repaired.kinds).toEqual([`missing ${config}`, `broken ${other.digest}`, `link-not-indexed repositories/${OTHER}/_layers/sha256/${config.slice(7)}`]);
    expect(repaired.problems[0]).toMatchObject({ repaired: true });
    expect(repaired.problems[0]!.detail).toContain('removed from the index');
    expect(repaired.problems[1]!.detail).toContain(`references ${config}, which ${OTHER} does not hold`);
    expect(repaired.problems[1]!.affects).toEqual([`${OTHER}@${other.digest}`]);
    expect(await gc().blobState(config)).toBeUndefined();
    expect((await headBlob(OTHER, config)).statusCode).toBe(404);
  });

  it('restores a manifest whose stored copy is gone, byte for byte, from the index', async () => {
    await rm(blobPath(image.digest));
    const found = await check();
    // Its own blob row has no bytes, and the manifest no stored copy.
    expect(found.kinds).toEqual([`missing ${image.digest}`, `manifest-missing ${blobPath(image.digest).slice(reg.root.length + 1)}`]);
    expect(found.problems[1]!.affects).toEqual([`${REPO}:v1`, `${REPO}:multi`]);

    const repaired = await check({ repair: true });
    expect(repaired.problems.map((p) => p.repaired)).toEqual([true, true]);
    expect(repaired.problems[1]!.detail).toContain('stored copy written again from the index');
    expect(await readFile(blobPath(image.digest))).toEqual(image.body);
    expect(await gc().blobState(image.digest)).toMatchObject({ size: image.body.length, state: 'live' });
    expect((await check()).problems).toEqual([]);
  });

  it('writes a missing manifest link again', async () => {
    const link = join(reg.root, 'repositories', REPO, '_manifests', ...index.digest.split(':'));
    await rm(link);
    expect((await check()).kinds).toEqual([`manifest-link-missing repositories/${REPO}/_manifests/sha256/${index.digest.slice(7)}`]);
    await check({ repair: true });
    expect(JSON.parse(await readFile(link, 'utf8'))).toEqual({ mediaType: OCI_INDEX });
    expect((await check()).problems).toEqual([]);
  });

  it('writes a removed blob link object again', async () => {
    const { layer } = layersOf(image);
    await rm(linkPath(REPO, layer));
    const found = await check();
    expect(found.kinds).toEqual([`link-missing repositories/${REPO}/_layers/sha256/${layer.slice(7)}`]);
    expect(found.problems[0]!.affects).toEqual([`${REPO}:v1`, `${REPO}:multi`]);
    await check({ repair: true });
    expect((await readFile(linkPath(REPO, layer))).length).toBe(0);
    expect((await check()).problems).toEqual([]);
  });

  it('indexes a link object the index lost, when the blob is there', async () => {
    const { layer } = layersOf(other);
    expect(await reg.app.registry.index.unlinkBlob(OTHER, layer)).toBe(true);
    const found = await check();
    expect(found.kinds).toEqual([`broken ${other.digest}`, `link-not-indexed repositories/${OTHER}/_layers/sha256/${layer.slice(7)}`]);
    const repaired = await check({ repair: true });
    expect(repaired.problems[1]).toMatchObject({ repaired: true });
    expect((await headBlob(OTHER, layer)).statusCode).toBe(200);
    expect((await check()).problems).toEqual([]);
  });

  it('rewrites a tag link that was removed or changed', async () => {
    const v1 = join(reg.root, 'repositories', REPO, '_tags', 'v1');
    const multi = join(reg.root, 'repositories', REPO, '_tags', 'multi');
    await rm(v1);
    await writeFile(multi, other.digest);
    const found = await check();
    expect(found.kinds).toEqual([`tag-mismatch repositories/${REPO}/_tags/multi`, `tag-missing repositories/${REPO}/_tags/v1`]);
    expect(found.problems[0]!.affects).toEqual([`${REPO}:multi`]);
    const repaired = await check({ repair: true });
    expect(repaired.report).toMatchObject({ problems: 2, repaired: 2 });
    expect(await readFile(v1, 'utf8')).toBe(image.digest);
    expect(await readFile(multi, 'utf8')).toBe(index.digest);
    expect((await check()).problems).toEqual([]);
  });

  it('records a store blob with no row, and quarantines one whose bytes do not match its name', async () => {
    const loose = Buffer.from('a blob the index never heard of');
    const looseDigest = digestOf(loose);
    const bad = digestOf('what the name says');
    for (const [digest, bytes] of [
      [looseDigest, loose],
      [bad, Buffer.from('something else')],
    ] as const) {
      await mkdir(dirname(blobPath(digest)), { recursive: true });
      await writeFile(blobPath(digest), bytes);
    }
    await writeFile(join(dirname(blobPath(looseDigest)), 'notes.txt'), 'x');
    const found = await check();
    const key = (d: string) => blobPath(d).slice(reg.root.length + 1);
    expect(found.kinds.sort()).toEqual(
      [`corrupt ${key(bad)}`, `not-indexed ${key(looseDigest)}`, `stray ${dirname(key(looseDigest))}/notes.txt`].sort(),
    );
    // Only a run over the whole registry looks at blobs that no repository holds.
    expect((await check({ repository: REPO })).problems).toEqual([]);

    await check({ repair: true });
    expect(await gc().blobState(looseDigest)).toMatchObject({ size: loose.length, state: 'live', touchedAt: NOW });
    expect(await exists(blobPath(bad))).toBe(false);
    expect(await readdir(join(reg.root, 'quarantine', 'sha256'))).toEqual([`${bad.slice(7)}.${NOW}`]);
    expect((await check()).kinds).toEqual([`stray ${dirname(key(looseDigest))}/notes.txt`]);
  });

  it('records a blob again with the size its bytes have', async () => {
    const { layer } = layersOf(image);
    const size = (await stat(blobPath(layer))).size;
    const { index: registryIndex, database } = reg.app.registry;
    await database.gc.removeBlob(layer);
    await registryIndex.insertBlob(layer, size + 5, NOW);
    await registryIndex.addBlob(REPO, layer, size + 5, NOW);
    const found = await check();
    expect(found.kinds).toEqual([`wrong-size ${layer}`]);
    expect(found.problems[0]!.detail).toContain(`indexed with ${size + 5} bytes, but the store holds ${size}`);
    await check({ repair: true });
    expect(await gc().blobState(layer)).toMatchObject({ size });
    expect(await registryIndex.linkedBlobSize(REPO, layer)).toBe(size);
    expect((await check()).problems).toEqual([]);
  });

  it('with a repository, looks at its manifests, links, tags and blobs only', async () => {
    const { layer } = layersOf(other);
    await rm(blobPath(layer));
    await rm(join(reg.root, 'repositories', REPO, '_tags', 'v1'));
    const mine = await check({ repository: REPO });
    expect(mine.kinds).toEqual([`tag-missing repositories/${REPO}/_tags/v1`]);
    // Its config, layer and two manifests.
    expect(mine.report).toMatchObject({ blobs: 4, manifests: 2, links: 2, tags: 2 });
    const theirs = await check({ repository: OTHER });
    expect(theirs.kinds).toEqual([`missing ${layer}`]);
    expect(theirs.report).toMatchObject({ blobs: 3, manifests: 1, links: 2, tags: 0 });
    // A repository whose name another one's begins with is not looked into.
    expect((await check({ repository: 'team' })).report).toMatchObject({ blobs: 0, manifests: 0, links: 0, tags: 0 });
  });

  it('says nothing of a blob the collector deletes while it looks, nor of one a write is holding', async () => {
    const { layer } = layersOf(other);
    const store = reg.app.registry.store;
    let taken = false;
    // The collector takes it between the listing of the rows and the read.
    const racing: BlobStore = Object.create(store, {
      read: {
        value: async (key: string, ...rest: unknown[]) => {
          if (key === blobPath(layer).slice(reg.root.length + 1)) {
            taken = true;
            await rm(blobPath(layer));
            await gc().removeBlob(layer);
          }
          return (store.read as (...args: unknown[]) => Promise<unknown>).call(store, key, ...rest);
        },
      },
    });
    const raced = await check({}, racing);
    expect(taken).toBe(true);
    expect(raced.kinds.filter((k) => k.startsWith('missing'))).toEqual([]);

    const claimed = digestOf('an upload being committed');
    expect(await gc().claimBlob(claimed, 10, Date.now(), Date.now() + 60_000)).toBe(true);
    expect((await check({ now: () => Date.now() })).kinds.filter((k) => k.includes(claimed))).toEqual([]);
  });

  it('reports a blob it could not read as unchecked, and leaves it alone even with repair', async () => {
    const { layer } = layersOf(image);
    const store = reg.app.registry.store;
    const failing: BlobStore = Object.create(store, {
      read: {
        value: async (key: string, ...rest: unknown[]) => {
          if (key === blobPath(layer).slice(reg.root.length + 1)) throw new Error('EIO: i/o error');
          return (store.read as (...args: unknown[]) => Promise<unknown>).call(store, key, ...rest);
        },
      },
    });
    const { problems } = await check({ repair: true }, failing);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ kind: 'unchecked', subject: layer, repaired: false });
    expect(problems[0]!.detail).toContain('EIO: i/o error');
    expect(await gc().blobState(layer)).toBeDefined();
    expect(await exists(blobPath(layer))).toBe(true);
  });

  it('removes a manifest whose stored copy is gone when its indexed content is no better', async () => {
    const database = reg.app.registry.database;
    if (!(database instanceof SqliteIndex)) return; // the content is damaged with SQL of SQLite's
    database.db.prepare('UPDATE manifests SET content = ? WHERE digest = ?').run(Buffer.from('{}'), other.digest);
    await rm(blobPath(other.digest));
    const repaired = await check({ repair: true });
    const problem = repaired.problems.find((p) => p.kind === 'manifest-missing');
    expect(problem).toMatchObject({ repaired: true });
    expect(problem!.detail).toContain(`removed from ${OTHER}`);
    expect(await reg.app.registry.index.manifest(OTHER, other.digest)).toBeUndefined();
    expect(repaired.problems.filter((p) => p.subject === other.digest && p.kind !== 'missing')).toEqual([]);
  });
});
