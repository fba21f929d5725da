// `ocireg index copy --to TARGET [config]`: a SQLite index filled through a real registry (and,
// for what the store does not hold, through the index API) is copied into an empty index, and
// everything the contract lets one read is compared, field by field, between the two. Then a
// registry on the copy serves what the original served, and a second copy is refused.
//
// The copy is checked into a second SQLite file (always) and into a fresh PostgreSQL database
// (with a server: test/support/postgres.ts).
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig, type Config } from '../src/config/config.js';
import type { Index } from '../src/index/contract.js';
import { runIndexCommand } from '../src/index-command.js';
import { openIndex } from '../src/index/open-index.js';
import { PostgresIndex } from '../src/index/postgres/index.js';
import { openSqliteIndex, SqliteIndex } from '../src/index/sqlite/index.js';
import { digestOf, makeImage, manifestOf, OCI_INDEX, OCI_MANIFEST, pushBlob, putManifest } from './helpers.js';
import { freePort } from './support/built-server.js';
import { createTestDatabase, describeWithPostgres, type TestDatabase } from './support/postgres.js';

const dirs: string[] = [];
const databases: TestDatabase[] = [];
const indexes: Index[] = [];
const apps: FastifyInstance[] = [];

afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  for (const index of indexes.splice(0)) await index.close();
  for (const db of databases.splice(0)) await db.drop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ocireg-index-copy-'));
  dirs.push(dir);
  return dir;
}

/** Runs the command in this process and keeps what it wrote. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runIndexCommand(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

async function open(config: Config): Promise<Index> {
  const index = await openIndex(config.index);
  indexes.push(index);
  return index;
}

/** Closes one index early (the afterEach closes it again, harmlessly). */
async function closeIndex(index: Index): Promise<void> {
  await index.close();
}

// ---- the source registry ----

const T0 = Date.UTC(2024, 0, 2, 3, 4, 5);
/** More than the command's batch (500) of each kind of row it reads in pages. */
const BULK = 505;

interface Source {
  root: string;
  configPath: string;
  config: Config;
  /** Every digest the source holds (blobs and manifests), to ask both indexes about. */
  digests: string[];
  uploadIds: string[];
  settings: string[];
  /** What the HTTP comparison asks for: repository -> references (tags and digests). */
  references: Record<string, string[]>;
  subjects: Array<{ repo: string; digest: string }>;
}

/**
 * A registry on a folder, filled through HTTP (images, an index, a referrer, a mount, an upload
 * in progress, a blob alone), then, through the SQLite index, with what only the index holds:
 * access keys, ECR settings, templates, pull-through cache rules, registry settings, pull times,
 * previews, and enough
 * rows of each paged kind to take several pages.
 */
async function makeSource(bulk = BULK): Promise<Source> {
  const root = await tmp();
  const configPath = join(root, 'source.yml');
  await writeFile(configPath, `log:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${root}/data\n`);
  const config = loadConfig({ path: configPath, env: {} });
  const app = await buildApp(config, { logger: false });
  const references: Record<string, string[]> = {};
  const subjects: Source['subjects'] = [];
  let uploadId: string;
  try {
    const put = async (repo: string, ref: string, m: { body: Buffer; digest: string; mediaType: string }) => {
      const res = await putManifest(app, repo, ref, m);
      expect(res.statusCode, res.body).toBe(201);
      (references[repo] ??= []).push(ref);
      if (!references[repo]!.includes(m.digest)) references[repo]!.push(m.digest);
    };
    const a = await makeImage(app, 'library/app', { layer: 'a' });
    await put('library/app', 'v1', a);
    await put('library/app', 'latest', a);
    const b = await makeImage(app, 'library/app', { layer: 'b' });
    await put('library/app', b.digest, b); // untagged at first
    await put('library/app', 'v2', b);
    const untagged = await makeImage(app, 'library/app', { layer: 'untagged' });
    await put('library/app', untagged.digest, untagged);
    const index = manifestOf(
      {
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { mediaType: OCI_MANIFEST, digest: a.digest, size: a.body.length, platform: { architecture: 'amd64', os: 'linux' } },
          { mediaType: OCI_MANIFEST, digest: b.digest, size: b.body.length, platform: { architecture: 'arm64', os: 'linux' } },
        ],
      },
      OCI_INDEX,
    );
    await put('library/app', 'multi', index);
    // A referrer of `a`: artifactType, annotations and a subject.
    const empty = await pushBlob(app, 'library/app', '{}');
    const sbom = await pushBlob(app, 'library/app', 'sbom contents');
    const referrer = manifestOf(
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.sbom+json',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 },
        layers: [{ mediaType: 'application/spdx+json', digest: sbom, size: 'sbom contents'.length }],
        subject: { mediaType: OCI_MANIFEST, digest: a.digest, size: a.body.length },
        annotations: { 'org.example.kind': 'sbom', 'org.opencontainers.image.created': '2024-01-02T03:04:05Z' },
      },
      OCI_MANIFEST,
    );
    await put('library/app', referrer.digest, referrer);
    subjects.push({ repo: 'library/app', digest: a.digest });

    // Another repository: a layer mounted from the first, and an image of its own.
    const layerA = digestOf('layer:a');
    const mount = await app.inject({ method: 'POST', url: `/v2/library/other/blobs/uploads/?mount=${layerA}&from=library/app` });
    expect(mount.statusCode, mount.body).toBe(201);
    const other = await makeImage(app, 'library/other', { layer: 'other' });
    await put('library/other', 'latest', other);
    // A repository holding a blob and nothing else, and an upload in progress.
    await pushBlob(app, 'zeta/blobs-only', 'a lonely blob');
    const upload = await app.inject({ method: 'POST', url: '/v2/library/app/blobs/uploads/' });
    expect(upload.statusCode, upload.body).toBe(202);
    uploadId = String(upload.headers['docker-upload-uuid']);
  } finally {
    await app.close();
  }

  const index = openSqliteIndex(config.index.path);
  try {
    // Access keys: one never used, one used, one used and then revoked.
    const key = (id: string, user: string, extra: Partial<{ description: string; expiresAt: number }> = {}) => ({
      id,
      user,
      secretHash: `hash-of-${id}`,
      scopes: JSON.stringify([{ type: 'repository', pattern: 'library/**', actions: ['pull'] }]),
      description: extra.description ?? null,
      createdAt: T0 + id.length,
      expiresAt: extra.expiresAt ?? null,
    });
    await index.accessKeys.insert(key('0000000000000001', 'ci'));
    await index.accessKeys.insert(key('0000000000000002', 'robot', { description: 'nightly build', expiresAt: T0 + 86_400_000 }));
    await index.accessKeys.insert(key('0000000000000003', 'robot', { description: 'old' }));
    await index.accessKeys.touch('0000000000000002', T0 + 1000);
    await index.accessKeys.touch('0000000000000003', T0 + 2000);
    expect(await index.accessKeys.revoke('0000000000000003', T0 + 3000)).toBe(true);

    // ECR: an empty repository created with every setting, settings on a pushed repository, and
    // library/other left with ECR's defaults.
    expect(
      await index.ecr.insertRepository({
        name: 'ecr/empty',
        createdAt: T0 + 10,
        tagMutability: 'IMMUTABLE_WITH_EXCLUSION',
        mutabilityExclusions: JSON.stringify([{ filterType: 'WILDCARD', filter: 'dev-*' }]),
        scanOnPush: true,
        encryption: JSON.stringify({ encryptionType: 'KMS', kmsKey: 'arn:aws:kms:us-east-1:123456789012:key/abc' }),
        resourceTags: JSON.stringify([{ Key: 'team', Value: 'platform' }]),
        policy: JSON.stringify({ Version: '2012-10-17', Statement: [] }),
        lifecyclePolicy: JSON.stringify({ rules: [{ rulePriority: 1, selection: { tagStatus: 'untagged', countType: 'imageCountMoreThan', countNumber: 1 }, action: { type: 'expire' } }] }),
        lifecyclePolicyUpdatedAt: T0 + 11,
      }),
    ).toBe(true);
    expect(
      await index.ecr.update('library/app', {
        tagMutability: 'IMMUTABLE',
        scanOnPush: true,
        resourceTags: JSON.stringify([{ Key: 'env', Value: 'prod' }]),
        lifecyclePolicy: JSON.stringify({ rules: [] }),
        lifecyclePolicyUpdatedAt: T0 + 20,
      }),
    ).toBe(true);
    for (let i = 0; i < bulk; i++) {
      await index.ecr.insertRepository({
        name: `bulk/ecr-${String(i).padStart(4, '0')}`,
        createdAt: T0 + i,
        tagMutability: i % 2 ? 'MUTABLE' : 'IMMUTABLE',
        mutabilityExclusions: '[]',
        scanOnPush: i % 3 === 0,
        encryption: '{"encryptionType":"AES256"}',
        resourceTags: '[]',
        policy: null,
        lifecyclePolicy: null,
      });
    }
    // Templates: one as created, one updated later (its two times differ), and many more.
    await index.ecr.insertTemplate('ROOT', JSON.stringify({ imageTagMutability: 'MUTABLE' }), T0 + 30);
    await index.ecr.insertTemplate('team', JSON.stringify({ imageTagMutability: 'MUTABLE' }), T0 + 31);
    await index.ecr.updateTemplate('team', JSON.stringify({ imageTagMutability: 'IMMUTABLE', description: 'changed' }), T0 + 32);
    for (let i = 0; i < bulk; i++) await index.ecr.insertTemplate(`bulk/t${String(i).padStart(4, '0')}`, `{"n":${i}}`, T0 + i);
    // Pull-through cache rules: one as created, one updated later, and many more.
    await index.ecr.insertPullThroughRule('ROOT', '{"upstreamRegistryUrl":"public.ecr.aws"}', T0 + 33);
    await index.ecr.insertPullThroughRule('hub', '{"upstreamRegistryUrl":"registry-1.docker.io"}', T0 + 34);
    await index.ecr.updatePullThroughRule('hub', '{"upstreamRegistryUrl":"registry-1.docker.io","credentialArn":"x"}', T0 + 35);
    for (let i = 0; i < bulk; i++) await index.ecr.insertPullThroughRule(`bulk/r${String(i).padStart(4, '0')}`, `{"n":${i}}`, T0 + i);
    const settings = ['registryPolicy', 'scanningConfiguration'];
    await index.ecr.putSetting('registryPolicy', JSON.stringify({ Version: '2012-10-17', Statement: [{ Sid: 'x' }] }));
    await index.ecr.putSetting('scanningConfiguration', '{"scanType":"BASIC"}');

    // Blobs linked nowhere, blob links and manifests past one page, in repositories of their own.
    const digests: string[] = [];
    for (let i = 0; i < bulk; i++) {
      const d = digestOf(`unlinked ${i}`);
      digests.push(d);
      await index.registry.insertBlob(d, i + 1, T0 + i);
    }
    for (let i = 0; i < bulk; i++) {
      const d = digestOf(`linked ${i}`);
      digests.push(d);
      await index.registry.addBlob('bulk/links', d, 100 + i, T0 + 2 * i);
    }
    for (let i = 0; i < bulk; i++) {
      const content = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, n: i, config: {}, layers: [] }));
      await index.registry.putManifest(
        'bulk/manifests',
        { digest: digestOf(content), mediaType: OCI_MANIFEST, content, blobs: [digestOf(`linked ${i}`)], children: [] },
        i % 4 === 0 ? [`t${i}`] : [],
        T0 + 3 * i,
      );
    }

    // Pull times (past one page) and previews.
    const pulls = [
      { repository: 'library/app', digest: digestOf('x'), pulledAt: T0 + 40 },
      ...Array.from({ length: bulk }, (_, i) => ({ repository: 'bulk/manifests', digest: digestOf(`pull ${i}`), pulledAt: T0 + i })),
    ];
    await index.pullTimes.record(pulls);
    await index.previews.save({ repository: 'library/app', policy: '{"rules":[]}', status: 'COMPLETE', result: '[{"imageDigest":"sha256:00"}]', startedAt: T0 + 50 });
    await index.previews.save({ repository: 'ecr/empty', policy: '{"rules":[1]}', status: 'IN_PROGRESS', result: null, startedAt: T0 + 51 });

    const all = index.db
      .prepare<[], { digest: string }>('SELECT digest FROM blobs UNION SELECT digest FROM manifests UNION SELECT digest FROM pull_times ORDER BY 1')
      .all()
      .map((r) => r.digest);
    return { root, configPath, config, digests: [...new Set([...all, ...digests])].sort(), uploadIds: [uploadId, 'no-such-upload'], settings, references, subjects };
  } finally {
    await index.close();
  }
}

// ---- what an index holds, read through the contract ----

const ALL = 100_000;

function withoutId<T extends { id: number } | undefined>(row: T): Omit<NonNullable<T>, 'id'> | undefined {
  if (!row) return undefined;
  const { id: _id, ...rest } = row;
  return rest;
}

function sortedEntries<V>(map: Map<string, V>): Array<[string, V]> {
  return [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Everything the contract gives about the index (the ids, its own, stripped). */
async function snapshot(index: Index, source: Source): Promise<Record<string, unknown>> {
  const r = index.registry;
  const catalog = await r.catalog('', ALL);
  const repositories: Record<string, unknown> = {};
  for (const name of catalog) {
    const id = await r.repositoryId(name);
    if (id === undefined) throw new Error(`no id for ${name}`);
    const tags = await r.allTags(id);
    const images = await index.images.images(id, 'ANY', '', ALL);
    const manifests: Record<string, unknown> = {};
    for (const image of images) {
      manifests[image.digest] = {
        row: withoutId(await r.manifest(name, image.digest)),
        tags: await r.tagsOf(name, image.digest),
        has: await r.hasManifest(id, image.digest),
        parents: (await index.images.parentsOf(id, image.digest)).sort(),
        referrers: await r.referrers(name, image.digest),
        imageReferrers: await index.images.referrers(id, image.digest, '', ALL),
      };
    }
    const links = await r.linkedBlobSizes(id, source.digests);
    const linked: Record<string, unknown> = {};
    for (const [digest, size] of sortedEntries(links)) {
      linked[digest] = { size, seen: await r.linkedBlobSize(name, digest), referenced: await index.images.blobReferenced(id, digest) };
    }
    repositories[name] = {
      hasManifests: await r.repositoryHasManifests(name),
      tags,
      byTag: await Promise.all(tags.map(async (t) => ({ tag: t, digest: await r.tagDigest(name, t), row: withoutId(await r.manifestByTag(name, t)) }))),
      imageTagDigests: await Promise.all(tags.map((t) => index.images.tagDigest(id, t))),
      images,
      untagged: (await index.images.images(id, 'UNTAGGED', '', ALL)).map((i) => i.digest),
      tagged: (await index.images.images(id, 'TAGGED', '', ALL)).map((i) => i.digest),
      imageIds: await index.images.imageIds(id, 'ANY', { digest: '', tag: '' }, ALL),
      byDigest: sortedEntries(await index.images.imagesByDigest(id, images.map((i) => i.digest))),
      tagsByDigest: sortedEntries(await index.images.tagsOf(id, images.map((i) => i.digest))),
      allTagsByDigest: sortedEntries(await index.images.allTags(id)),
      facts: (await index.images.manifestFacts(id)).sort((x, y) => (x.digest < y.digest ? -1 : 1)),
      children: [...(await index.images.childDigests(id))].sort(),
      manifests,
      linked,
      uploads: await r.uploadsOf(name),
    };
  }
  const blobs: Record<string, unknown> = {};
  for (const digest of source.digests) {
    blobs[digest] = {
      size: await r.blobSize(digest),
      anyLinked: await r.anyLinkedBlobSize(digest),
      repositories: await r.blobRepositories(digest, '', ALL),
    };
  }
  const referrers = await Promise.all(source.subjects.map((s) => r.referrers(s.repo, s.digest)));
  const keys = await index.accessKeys.list();
  const ecrRepositories = await index.ecr.repositories('', ALL);
  const ecrNames = [...new Set([...catalog, ...ecrRepositories.map((e) => e.name), 'no/such-repo'])].sort();
  const templates = await index.ecr.templates('', ALL);
  const pullTimes = [];
  // Page through the pull times as the command does, with a bounded number of pages.
  for (let after = { repository: '', digest: '' }, page = 0; page < 100; page++) {
    const rows = await index.pullTimes.page(after, 97);
    pullTimes.push(...rows);
    if (rows.length < 97) break;
    after = { repository: rows[rows.length - 1]!.repository, digest: rows[rows.length - 1]!.digest };
  }
  const previews = await index.previews.all();
  return {
    catalog,
    catalogPages: [await r.catalog('', 2), await r.catalog('library/app', 1), await r.catalog('zeta', 5)],
    repositories,
    blobs,
    referrers,
    uploads: await Promise.all(source.uploadIds.map((u) => r.upload(u))),
    staleUploads: await r.staleUploads(Number.MAX_SAFE_INTEGER),
    keys,
    keysById: await Promise.all(keys.map((k) => index.accessKeys.byId(k.id))),
    ecrRepositories,
    ecrByName: await Promise.all(ecrNames.map(async (n) => ({ name: n, exists: await index.ecr.exists(n), row: await index.ecr.repository(n) }))),
    withLifecyclePolicies: await index.ecr.withLifecyclePolicies(),
    templates,
    templatesByPrefix: await Promise.all([...templates.map((t) => t.prefix), 'none'].map((p) => index.ecr.template(p))),
    templatePage: await index.ecr.templates('bulk/t0100', 3),
    pullThroughRules: await index.ecr.pullThroughRules('', ALL),
    pullThroughRulePage: await index.ecr.pullThroughRules('bulk/r0100', 3),
    pullThroughRuleByPrefix: await Promise.all(['ROOT', 'hub', 'none'].map((p) => index.ecr.pullThroughRule(p))),
    settings: await Promise.all([...source.settings, 'none'].map(async (n) => [n, await index.ecr.setting(n)])),
    pullTimes,
    lastPulled: await Promise.all(pullTimes.slice(0, 5).map((p) => index.pullTimes.lastPulled(p.repository, p.digest))),
    previews,
    previewsByRepository: await Promise.all([...previews.map((p) => p.repository), 'none'].map((n) => index.previews.get(n))),
  };
}

/**
 * The times the contract does not show (when each tag was last moved, when each blob was first
 * stored and linked, when each repository was created), read from the tables: the copy keeps them.
 */
async function times(index: Index): Promise<Record<string, unknown[]>> {
  const queries = {
    repositories: 'SELECT name, created_at FROM repositories ORDER BY name',
    blobs: 'SELECT digest, size, created_at FROM blobs ORDER BY digest',
    links: 'SELECT r.name, rb.digest, rb.created_at FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id ORDER BY r.name, rb.digest',
    tags: 'SELECT r.name AS repository, t.name, t.digest, t.updated_at FROM tags t JOIN repositories r ON r.id = t.repository_id ORDER BY r.name, t.name',
    manifests: 'SELECT r.name, m.digest, m.created_at, m.size FROM manifests m JOIN repositories r ON r.id = m.repository_id ORDER BY r.name, m.digest',
    references: `SELECT r.name, m.digest, x.kind, x.digest AS target FROM manifest_references x JOIN manifests m ON m.id = x.manifest_id
                 JOIN repositories r ON r.id = m.repository_id ORDER BY r.name, m.digest, x.kind, x.digest`,
    uploads: 'SELECT id, repository, created_at, updated_at FROM uploads ORDER BY id',
    keys: 'SELECT id, created_at, expires_at, last_used_at, revoked_at FROM access_keys ORDER BY id',
  };
  const out: Record<string, unknown[]> = {};
  for (const [name, sql] of Object.entries(queries)) {
    let rows: Array<Record<string, unknown>>;
    if (index instanceof SqliteIndex) rows = index.db.prepare<[], Record<string, unknown>>(sql).all();
    else if (index instanceof PostgresIndex) rows = (await index.pool.query<Record<string, unknown>>(sql)).rows;
    else throw new Error('an index of an unknown kind');
    // Numbers the same way on both sides (PostgreSQL's bigint may come as text).
    out[name] = rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, typeof v === 'string' && /^-?\d+$/.test(v) && k !== 'name' && k !== 'id' ? Number(v) : v])));
  }
  return out;
}

/** What the registry answers to reads of what the source holds. */
async function responses(app: FastifyInstance, source: Source): Promise<unknown[]> {
  const out: unknown[] = [];
  const get = async (url: string, headers: Record<string, string> = {}) => {
    const res = await app.inject({ method: 'GET', url, headers });
    out.push({
      url,
      status: res.statusCode,
      type: res.headers['content-type'],
      digest: res.headers['docker-content-digest'],
      body: res.body,
    });
    return res;
  };
  const catalog = await get('/v2/_catalog?n=10000');
  expect(catalog.statusCode).toBe(200);
  for (const [repo, refs] of Object.entries(source.references)) {
    const tags = await get(`/v2/${repo}/tags/list`);
    expect(tags.statusCode).toBe(200);
    await get(`/v2/${repo}/tags/list?n=1&last=latest`);
    for (const ref of refs) {
      const res = await get(`/v2/${repo}/manifests/${ref}`, { accept: `${OCI_MANIFEST}, ${OCI_INDEX}` });
      expect(res.statusCode, `${repo}:${ref}`).toBe(200);
    }
  }
  for (const s of source.subjects) await get(`/v2/${s.repo}/referrers/${s.digest}`);
  await get(`/v2/library/other/blobs/${digestOf('layer:a')}`);
  await get('/v2/bulk/manifests/tags/list');
  return out;
}

// ---- the copy ----

interface Target {
  configPath: string;
  config: Config;
}

async function sqliteTarget(root: string): Promise<Target> {
  const configPath = join(root, 'target-sqlite.yml');
  await writeFile(configPath, `storage:\n  filesystem:\n    rootdirectory: ${root}/data\nindex:\n  path: ${root}/copy/index.db\n`);
  return { configPath, config: loadConfig({ path: configPath, env: {} }) };
}

async function postgresTarget(root: string): Promise<Target> {
  const db = await createTestDatabase();
  databases.push(db);
  const configPath = join(root, 'target-postgres.yml');
  await writeFile(
    configPath,
    `storage:\n  filesystem:\n    rootdirectory: ${root}/data\n    shared: true\nindex:\n  driver: postgres\n  postgres:\n    url: ${db.url}\n    poolsize: 4\n`,
  );
  return { configPath, config: loadConfig({ path: configPath, env: {} }) };
}

function copySuite(kind: 'sqlite' | 'postgres', makeTarget: (root: string) => Promise<Target>): void {
  it(
    'copies every row, so that the contract reads the same from both, and a registry on the copy serves the same',
    async () => {
      const source = await makeSource();
      const target = await makeTarget(source.root);

      const copied = await run(['copy', '--to', target.configPath, source.configPath]);
      expect(copied.stderr).toBe('');
      expect(copied.code).toBe(0);

      const from = await open(source.config);
      const to = await open(target.config);
      expect(to.driver).toBe(kind);
      const expected = await snapshot(from, source);
      const actual = await snapshot(to, source);
      // Section by section first, for a readable difference when one fails.
      for (const key of Object.keys(expected)) expect(actual[key], key).toEqual(expected[key]);
      expect(actual).toEqual(expected);
      expect(await times(to)).toEqual(await times(from));

      // The report counts what was copied.
      const db = (from as SqliteIndex).db;
      const count = (table: string) => db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM ${table}`).get()!.n;
      const line = copied.stdout.trim();
      expect(copied.stdout.split('\n').filter((l) => l !== '')).toHaveLength(1);
      expect(line).toContain(source.config.index.path);
      expect(line).toContain(`${count('repositories')} repositories`);
      expect(line).toContain(`${count('manifests')} manifests`);
      expect(line).toContain(`${count('tags')} tags`);
      expect(line).toContain(`${count('blobs')} blobs`);
      expect(line).toContain('1 uploads');
      expect(line).toContain('3 access keys');
      expect(line).toContain(`${count('ecr_repositories')} ECR repository settings`);
      expect(line).toContain(`${BULK + 2} creation templates`);
      expect(line).toContain(`${BULK + 2} pull-through cache rules`);
      expect(line).toContain('2 registry settings');
      expect(line).toContain(`${BULK + 1} pull times`);
      expect(line).toContain('2 lifecycle previews');
      expect(count('repositories')).toBeGreaterThan(500);
      expect(count('blobs')).toBeGreaterThan(1000);

      // A registry on the copy answers as one on the original does.
      await closeIndex(from);
      await closeIndex(to);
      const original = await buildApp(source.config, { logger: false });
      apps.push(original);
      const before = await responses(original, source);
      await original.close();
      const copy = await buildApp(source.config, { logger: false, index: await openIndex(target.config.index) });
      apps.push(copy);
      expect(await responses(copy, source)).toEqual(before);
      // And takes new pushes (its identities and tag versions go on from the copied rows).
      const fresh = await makeImage(copy, 'library/app', { layer: 'after the copy' });
      expect((await putManifest(copy, 'library/app', 'v3', fresh)).statusCode).toBe(201);
      const tags = await copy.inject({ method: 'GET', url: '/v2/library/app/tags/list' });
      expect(tags.json()).toEqual({ name: 'library/app', tags: ['latest', 'multi', 'v1', 'v2', 'v3'] });
    },
    240_000,
  );

  it(
    'refuses a second copy into the same target, changing nothing',
    async () => {
      const source = await makeSource(3);
      const target = await makeTarget(source.root);
      expect((await run(['copy', '--to', target.configPath, source.configPath])).code).toBe(0);
      const to = await open(target.config);
      const before = await snapshot(to, source);
      const beforeTimes = await times(to);
      await closeIndex(to);

      const again = await run(['copy', '--to', target.configPath, source.configPath]);
      expect(again.code).toBe(1);
      expect(again.stdout).toBe('');
      expect(again.stderr).toMatch(/not empty/);
      expect(again.stderr.trim().split('\n')).toHaveLength(1);

      const after = await open(target.config);
      expect(await snapshot(after, source)).toEqual(before);
      expect(await times(after)).toEqual(beforeTimes);
    },
    240_000,
  );

  it('refuses a target that holds only an access key, a creation template, a pull-through cache rule, a lifecycle preview or an upload', async () => {
    const root = await tmp();
    const sourcePath = join(root, 'source.yml');
    await writeFile(sourcePath, `storage:\n  filesystem:\n    rootdirectory: ${root}/data\n`);
    await openSqliteIndex(join(root, 'data', 'index.db')).close(); // an empty source index
    for (const fill of [
      (i: Index) => i.accessKeys.insert({ id: 'aaaaaaaaaaaaaaaa', user: 'u', secretHash: 'h', scopes: '[]', description: null, createdAt: T0, expiresAt: null }),
      (i: Index) => i.ecr.insertTemplate('ROOT', '{}', T0).then(() => undefined),
      (i: Index) => i.ecr.insertPullThroughRule('hub', '{}', T0).then(() => undefined),
      (i: Index) => i.previews.save({ repository: 'a/b', policy: '{}', status: 'COMPLETE', result: '[]', startedAt: T0 }),
      (i: Index) => i.registry.insertUpload('8c0a1f9e-0000-4000-8000-000000000000', 'a/b', T0),
    ]) {
      const target = await makeTarget(await tmp());
      const index = await open(target.config);
      await fill(index);
      await closeIndex(index);
      const r = await run(['copy', '--to', target.configPath, sourcePath]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/not empty/);
    }
  }, 60_000);
}

describe('ocireg index copy into SQLite', () => {
  copySuite('sqlite', sqliteTarget);

  it('refuses to copy an index onto itself', async () => {
    const root = await tmp();
    const path = join(root, 'config.yml');
    await writeFile(path, `storage:\n  filesystem:\n    rootdirectory: ${root}/data\n`);
    const r = await run(['copy', '--to', path, path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the target is the source/);
  });
});

describeWithPostgres('ocireg index copy into PostgreSQL', () => {
  copySuite('postgres', postgresTarget);
});

describe('ocireg index copy arguments and failures', () => {
  it.each([
    [[], /unknown index command ""/],
    [['move'], /unknown index command "move"/],
    [['copy'], /--to TARGET/],
    [['copy', 'config.yml'], /--to TARGET/],
    [['copy', '--to'], /--to/],
    [['copy', '--to', ''], /--to TARGET/],
    [['copy', '--to', 't.yml', 'a.yml', 'b.yml'], /unexpected arguments: b.yml/],
    [['copy', '--to', 't.yml', '--force'], /--force/],
  ])('exits 2 for %j, with the usage', async (args, message) => {
    const r = await run(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain('index copy --to TARGET');
  });

  it('exits 1 when the source is not SQLite, opening nothing', async () => {
    const root = await tmp();
    const port = await freePort();
    const source = join(root, 'source.yml');
    await writeFile(
      source,
      `storage:\n  filesystem:\n    rootdirectory: ${root}/data\n    shared: true\nindex:\n  driver: postgres\n  postgres:\n    url: postgres://u:pw@127.0.0.1:${port}/db\n`,
    );
    const target = await sqliteTarget(root);
    const started = Date.now();
    const r = await run(['copy', '--to', target.configPath, source]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the source index must be SQLite, not postgres/);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.stdout).toBe('');
  });

  it('exits 1 when a configuration file is missing or invalid', async () => {
    const root = await tmp();
    const good = join(root, 'good.yml');
    await writeFile(good, `storage:\n  filesystem:\n    rootdirectory: ${root}/data\n`);
    const missing = join(root, 'missing.yml');
    const r1 = await run(['copy', '--to', missing, good]);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toContain(missing);
    const r2 = await run(['copy', '--to', good, missing]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain(missing);
    const bad = join(root, 'bad.yml');
    await writeFile(bad, 'index:\n  driver: postgres\n  postgres:\n    url: postgres://u@h/d\n');
    const r3 = await run(['copy', '--to', bad, good]);
    expect(r3.code).toBe(1);
    expect(r3.stderr).toContain('storage.filesystem.shared');
  });

  it('exits 1 when the source configuration names no SQLite index, and creates none', async () => {
    const root = await tmp();
    const source = join(root, 'source.yml');
    await writeFile(source, `storage:\n  filesystem:\n    rootdirectory: ${root}/data\n`);
    const target = join(root, 'target.yml');
    await writeFile(target, `index:\n  path: ${root}/target.db\n`);
    const r = await run(['copy', '--to', target, source]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`there is no SQLite index at ${join(root, 'data', 'index.db')}`);
    expect(existsSync(join(root, 'data', 'index.db'))).toBe(false);
  });

  it('exits 1 with one line, without the password, when the target cannot be reached', async () => {
    const root = await tmp();
    const source = join(root, 'source.yml');
    await writeFile(source, `storage:\n  filesystem:\n    rootdirectory: ${root}/data\n`);
    await openSqliteIndex(join(root, 'data', 'index.db')).close();
    const port = await freePort();
    const target = join(root, 'target.yml');
    await writeFile(
      target,
      `storage:\n  filesystem:\n    rootdirectory: ${root}/data\n    shared: true\nindex:\n  driver: postgres\n  postgres:\n    url: postgres://ocireg:T0p-s3cret@127.0.0.1:${port}/shared_index\n`,
    );
    const started = Date.now();
    const r = await run(['copy', '--to', target, source]);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('127.0.0.1');
    expect(r.stderr).toContain('shared_index');
    expect(r.stderr).not.toContain('T0p-s3cret');
  });
});
