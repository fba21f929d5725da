// Image archives over /api/v1/: imports of docker save (both formats) and OCI layouts, in any
// entry order, gzip or not; names from the archive or the form; access rules and the UI's
// session; hostile and lying archives refused with nothing left behind; exports in both formats.
import { readdir, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { errorCode, startRegistry, tempDir, type TestRegistry } from '../helpers.js';
import { basic, writeHtpasswd } from './auth-support.js';
import {
  OCI_INDEX,
  OCI_MANIFEST,
  blobsOf,
  dockerSaveEntries,
  entriesOf,
  filler,
  formOf,
  indexOf,
  ociLayoutEntries,
  sha256,
  tarOf,
  testImage,
  type TarEntry,
} from '../archive/archives.js';

let reg: TestRegistry | undefined;
afterEach(async () => {
  await reg?.destroy();
  reg = undefined;
});

const ACCESS = {
  repositories: {
    'team/**': { users: { alice: ['pull', 'push', 'delete'], bob: ['pull'] } },
  },
} as const;

async function withUsers(extra: Record<string, unknown> = {}): Promise<TestRegistry> {
  const dir = await tempDir();
  reg = await startRegistry({ auth: { htpasswd: { path: await writeHtpasswd(dir) } }, access: ACCESS as never, ...extra }, dir);
  return reg;
}

function importArchive(app: FastifyInstance, archive: Buffer, fields: Record<string, string> = {}, headers: Record<string, string> = {}, options: Parameters<typeof formOf>[2] = {}): Promise<LightMyRequestResponse> {
  const form = formOf(archive, fields, options);
  return app.inject({ method: 'POST', url: '/api/v1/import', payload: form.payload, headers: { ...form.headers, ...headers } }) as Promise<LightMyRequestResponse>;
}

/** Every file under the data folder but the index: what a refused archive must leave as it was. */
async function storeFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) await walk(path);
      else if (!/\.db(-wal|-shm|-journal)?$/.test(e.name)) out.push(relative(root, path));
    }
  };
  await walk(root);
  return out.sort();
}

async function catalog(app: FastifyInstance, authorization?: string): Promise<string[]> {
  const res = await app.inject({ method: 'GET', url: '/v2/_catalog', headers: authorization ? { authorization } : {} });
  return (res.json() as { repositories: string[] }).repositories;
}

/** The image as /v2/ serves it: the manifest by tag, and each blob it names, byte for byte. */
async function expectPulled(app: FastifyInstance, repo: string, tag: string, digest: string, blobs: Buffer[], authorization?: string): Promise<void> {
  const headers = authorization ? { authorization } : {};
  const manifest = await app.inject({ method: 'GET', url: `/v2/${repo}/manifests/${tag}`, headers: { ...headers, accept: `${OCI_MANIFEST}, ${OCI_INDEX}` } });
  expect(manifest.statusCode).toBe(200);
  expect(manifest.headers['docker-content-digest']).toBe(digest);
  for (const blob of blobs) {
    const res = await app.inject({ method: 'GET', url: `/v2/${repo}/blobs/${sha256(blob)}`, headers });
    expect(res.statusCode, `blob ${sha256(blob)}`).toBe(200);
    expect(res.rawPayload.equals(blob)).toBe(true);
  }
}

/** A form of these text fields only (each `x`). */
function manyParts(names: string[]): { payload: Buffer; headers: Record<string, string> } {
  const b = 'many-parts';
  const body = names.map((n) => `--${b}\r\nContent-Disposition: form-data; name="${n}"\r\n\r\nx\r\n`).join('') + `--${b}--\r\n`;
  return { payload: Buffer.from(body), headers: { 'content-type': `multipart/form-data; boundary=${b}` } };
}

/** A form with the repository field and two file parts holding the same archive. */
function twoFiles(archive: Buffer): { payload: Buffer; headers: Record<string, string> } {
  const b = 'two-files';
  const file = (name: string) => [Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="${name}"; filename="a.tar"\r\n\r\n`), archive, Buffer.from('\r\n')];
  const payload = Buffer.concat([Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="repository"\r\n\r\nteam/two\r\n`), ...file('file'), ...file('file'), Buffer.from(`--${b}--\r\n`)]);
  return { payload, headers: { 'content-type': `multipart/form-data; boundary=${b}` } };
}

describe('importing archives', () => {
  it('imports a docker save of the older format, its manifest.json last, under the names it holds', async () => {
    reg = await startRegistry();
    const one = await testImage('one');
    const two = await testImage('two', 'arm64', 3);
    const tar = await tarOf(dockerSaveEntries([
      { image: one, repoTags: ['team/one:v1', 'team/one:latest'] },
      { image: two, repoTags: ['localhost:5000/team/two:2.0', 'docker.io/library/busybox:1.36'] },
    ]));
    const res = await importArchive(reg.app, tar);
    expect(res.statusCode, res.body).toBe(201);
    // The manifest the import writes over a saved image is the OCI manifest of its config and layer tars.
    expect(res.json()).toEqual({
      imported: [
        { repository: 'team/one', tag: 'v1', digest: one.digest, mediaType: OCI_MANIFEST },
        { repository: 'team/one', tag: 'latest', digest: one.digest, mediaType: OCI_MANIFEST },
        { repository: 'team/two', tag: '2.0', digest: two.digest, mediaType: OCI_MANIFEST },
        { repository: 'busybox', tag: '1.36', digest: two.digest, mediaType: OCI_MANIFEST },
      ],
    });
    await expectPulled(reg.app, 'team/one', 'latest', one.digest, [one.config, ...one.layers]);
    await expectPulled(reg.app, 'team/two', '2.0', two.digest, [two.config, ...two.layers]);
    await expectPulled(reg.app, 'busybox', '1.36', two.digest, [two.config, ...two.layers]);
    // No staging upload is left once the import is done.
    expect((await storeFiles(reg.root)).filter((f) => f.startsWith('uploads/'))).toEqual([]);
  });

  it('imports a gzip-compressed docker save with manifest.json first, a layer shared through a link, into the form\'s repository and tag', async () => {
    reg = await startRegistry();
    const image = await testImage('linked');
    const entries = dockerSaveEntries([{ image, repoTags: ['ignored/name:x'] }], { manifestLast: false });
    // docker writes a layer it saved already as a symbolic link to the first copy.
    const second = entries.findIndex((e) => e.name.endsWith('/layer.tar') && e.data?.toString() === image.layers[1]!.toString());
    const dir = entries[second]!.name.split('/')[0]!;
    const first = entries.find((e) => e.name.endsWith('/layer.tar') && e !== entries[second])!;
    entries[second] = { name: `${dir}/layer.tar`, type: 'symlink', linkname: `../${first.name}` };
    // ... so the config must list the first layer twice.
    const config = JSON.parse(image.config.toString());
    config.rootfs.diff_ids[1] = config.rootfs.diff_ids[0];
    const configBody = Buffer.from(JSON.stringify(config));
    const configEntry = entries.find((e) => e.name.endsWith('.json') && e.name !== 'manifest.json')!;
    configEntry.data = configBody;
    const res = await importArchive(reg.app, await tarOf(entries, { gzip: true }), { repository: 'team/linked', tag: 'v9' });
    expect(res.statusCode, res.body).toBe(201);
    const imported = (res.json() as { imported: Array<{ repository: string; tag: string; digest: string }> }).imported;
    expect(imported.map((i) => `${i.repository}:${i.tag}`)).toEqual(['team/linked:v9']);
    await expectPulled(reg.app, 'team/linked', 'v9', imported[0]!.digest, [configBody, image.layers[0]!]);
    const manifest = (await reg.app.inject({ method: 'GET', url: '/v2/team/linked/manifests/v9' })).json() as { layers: Array<{ digest: string }> };
    expect(manifest.layers.map((l) => l.digest)).toEqual([sha256(image.layers[0]!), sha256(image.layers[0]!)]);
    expect(await catalog(reg.app)).toEqual(['team/linked']);
  });

  it('imports an OCI layout (index.json last, fields after the file) keeping its digest', async () => {
    reg = await startRegistry();
    const image = await testImage('oci');
    const entries = ociLayoutEntries([{ manifest: image.manifest, mediaType: OCI_MANIFEST, annotations: { 'org.opencontainers.image.ref.name': '1.0' } }], blobsOf(image), { indexFirst: false });
    const res = await importArchive(reg.app, await tarOf(entries), { repository: 'team/oci' }, {}, { fieldsLast: true });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toEqual({ imported: [{ repository: 'team/oci', tag: '1.0', digest: image.digest, mediaType: OCI_MANIFEST }] });
    await expectPulled(reg.app, 'team/oci', '1.0', image.digest, [image.config, ...image.layers]);
  });

  it('keeps a multi-platform index with its children; names from containerd\'s annotation (docker 25+ save)', async () => {
    reg = await startRegistry();
    const amd = await testImage('multi', 'amd64');
    const arm = await testImage('multi', 'arm64');
    const index = indexOf([{ image: amd, arch: 'amd64' }, { image: arm, arch: 'arm64' }]);
    const entries = ociLayoutEntries(
      [{ manifest: index, mediaType: OCI_INDEX, annotations: { 'io.containerd.image.name': 'docker.io/team/multi:2', 'org.opencontainers.image.ref.name': '2' } }],
      [...blobsOf(amd), ...blobsOf(arm)],
    );
    const res = await importArchive(reg.app, await tarOf(entries, { gzip: true }));
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toEqual({ imported: [{ repository: 'team/multi', tag: '2', digest: sha256(index), mediaType: OCI_INDEX }] });
    const got = await reg.app.inject({ method: 'GET', url: '/v2/team/multi/manifests/2', headers: { accept: OCI_INDEX } });
    expect(got.headers['content-type']).toBe(OCI_INDEX);
    expect(got.rawPayload.equals(index)).toBe(true);
    for (const child of [amd, arm]) await expectPulled(reg.app, 'team/multi', child.digest, child.digest, [child.config, ...child.layers]);
  });

  it("names a docker 25+ save's image from manifest.json's RepoTags when index.json names it not", async () => {
    reg = await startRegistry();
    const image = await testImage('tagged-by-docker');
    const configPath = `blobs/sha256/${sha256(image.config).slice(7)}`;
    const saved = [{ Config: configPath, RepoTags: ['team/saved:3.1'], Layers: image.layers.map((l) => `blobs/sha256/${sha256(l).slice(7)}`) }];
    const entries = [...ociLayoutEntries([{ manifest: image.manifest, mediaType: OCI_MANIFEST }], blobsOf(image)), { name: 'manifest.json', data: JSON.stringify(saved) }];
    const res = await importArchive(reg.app, await tarOf(entries));
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toEqual({ imported: [{ repository: 'team/saved', tag: '3.1', digest: image.digest, mediaType: OCI_MANIFEST }] });
  });

  it('takes the tar itself as the body, with the names in the query', async () => {
    reg = await startRegistry();
    const image = await testImage('raw');
    const res = await reg.app.inject({
      method: 'POST',
      url: '/api/v1/import?repository=team/raw&tag=r1',
      headers: { 'content-type': 'application/x-tar' },
      payload: await tarOf(dockerSaveEntries([{ image, repoTags: [] }])),
    });
    expect(res.statusCode, res.body).toBe(201);
    await expectPulled(reg.app, 'team/raw', 'r1', image.digest, [image.config, ...image.layers]);
  });

  it('refuses forms and names it cannot use, naming the problem', async () => {
    reg = await startRegistry();
    const image = await testImage('forms');
    const two = await testImage('forms-2');
    const unnamed = await tarOf(dockerSaveEntries([{ image, repoTags: [] }]));
    const both = await tarOf(dockerSaveEntries([{ image, repoTags: ['a:1'] }, { image: two, repoTags: ['b:1'] }]));
    const cases: Array<[string, Promise<LightMyRequestResponse>, number, string, RegExp]> = [
      ['no name anywhere', importArchive(reg.app, unnamed), 400, 'BLOB_UPLOAD_INVALID', /give the repository field/],
      ['one tag for two images', importArchive(reg.app, both, { tag: 'x' }), 400, 'BLOB_UPLOAD_INVALID', /holds 2 images/],
      ['a bad repository', importArchive(reg.app, unnamed, { repository: 'Bad Name' }), 400, 'NAME_INVALID', /invalid repository name/],
      ['a bad tag', importArchive(reg.app, unnamed, { repository: 'ok', tag: '-x' }), 400, 'MANIFEST_INVALID', /invalid tag/],
      ['an unknown field', importArchive(reg.app, unnamed, { colour: 'blue' }), 400, 'BLOB_UPLOAD_INVALID', /unknown field/],
      ['the file under another name', importArchive(reg.app, unnamed, { repository: 'ok' }, {}, { fileField: 'archive' }), 400, 'BLOB_UPLOAD_INVALID', /part named file/],
      [
        'no file at all',
        reg.app.inject({ method: 'POST', url: '/api/v1/import', ...formOf(undefined, { repository: 'ok' }) }),
        400,
        'BLOB_UPLOAD_INVALID',
        /no part named file/,
      ],
      ['a field longer than 1 KiB', importArchive(reg.app, unnamed, { repository: 'a'.repeat(1500) }), 400, 'BLOB_UPLOAD_INVALID', /repository field is longer than 1024 bytes/],
      ['three fields', importArchive(reg.app, unnamed, { repository: 'ok', tag: 'v1', colour: 'x' }), 400, 'BLOB_UPLOAD_INVALID', /unknown field|two fields at most/],
      ['a field twice too many', reg.app.inject({ method: 'POST', url: '/api/v1/import', ...manyParts(['repository', 'tag', 'tag', 'tag']) }), 400, 'BLOB_UPLOAD_INVALID', /two fields at most/],
      ['two archives', reg.app.inject({ method: 'POST', url: '/api/v1/import', ...twoFiles(unnamed) }), 400, 'BLOB_UPLOAD_INVALID', /one archive per request/],
      [
        'JSON instead of a form',
        reg.app.inject({ method: 'POST', url: '/api/v1/import', headers: { 'content-type': 'application/json' }, payload: '{}' }),
        415,
        'UNSUPPORTED',
        /multipart\/form-data/,
      ],
    ];
    for (const [what, pending, status, code, message] of cases) {
      const res = await pending;
      expect(res.statusCode, `${what}: ${res.body}`).toBe(status);
      expect(errorCode(res), what).toBe(code);
      expect((res.json() as { errors: Array<{ message: string }> }).errors[0]!.message, what).toMatch(message);
    }
    expect(await catalog(reg.app)).toEqual([]);
    expect((await storeFiles(reg.root)).filter((f) => !f.startsWith('_'))).toEqual([]);
  });
});

describe('hostile and lying archives', () => {
  /** A valid OCI layout's entries, to be spoiled. */
  async function layout() {
    const image = await testImage('victim');
    const entries = ociLayoutEntries([{ manifest: image.manifest, mediaType: OCI_MANIFEST, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }], blobsOf(image));
    return { image, entries };
  }

  it('refuses each with a 4xx naming the problem, and leaves the store as it was', async () => {
    reg = await startRegistry({ archives: { maxentries: 5000 } });
    // Something already stored, which no refusal may touch.
    const kept = await testImage('kept');
    expect((await importArchive(reg.app, await tarOf(dockerSaveEntries([{ image: kept, repoTags: ['team/kept:v1'] }])))).statusCode).toBe(201);
    const before = await storeFiles(reg.root);
    const { image, entries } = await layout();
    const valid = await tarOf(entries);
    const layerPath = `blobs/sha256/${sha256(image.layers[0]!).slice(7)}`;
    const spoiled = (change: (e: TarEntry[]) => TarEntry[]) => tarOf(change(entries.map((e) => ({ ...e }))));
    const bomb: TarEntry[] = Array.from({ length: 10_000 }, (_, i) => ({ name: `bomb/${i}`, data: 'x' }));
    const cases: Array<[string, Buffer, number, string, RegExp]> = [
      ['a path with ..', await spoiled((e) => [{ name: '../../etc/cron.d/evil', data: 'x' }, ...e]), 400, 'BLOB_UPLOAD_INVALID', /climbs out of the archive/],
      ['a path with .. inside', await spoiled((e) => [...e, { name: 'blobs/../../evil', data: 'x' }]), 400, 'BLOB_UPLOAD_INVALID', /climbs out/],
      ['an absolute path', await spoiled((e) => [{ name: '/etc/passwd', data: 'x' }, ...e]), 400, 'BLOB_UPLOAD_INVALID', /absolute path/],
      ['a symlink out of the archive', await spoiled((e) => [...e, { name: 'escape', type: 'symlink', linkname: '../../../etc/shadow' }]), 400, 'BLOB_UPLOAD_INVALID', /points outside the archive/],
      ['an absolute symlink', await spoiled((e) => [...e, { name: 'abs', type: 'symlink', linkname: '/etc/shadow' }]), 400, 'BLOB_UPLOAD_INVALID', /points outside the archive/],
      ['a hard link out of the archive', await spoiled((e) => [...e, { name: 'hard', type: 'link', linkname: '../outside' }]), 400, 'BLOB_UPLOAD_INVALID', /points outside the archive/],
      ['a device', await spoiled((e) => [...e, { name: 'dev', type: 'character-device', devmajor: 1, devminor: 3 }]), 400, 'BLOB_UPLOAD_INVALID', /character-device/],
      ['a FIFO', await spoiled((e) => [...e, { name: 'pipe', type: 'fifo' }]), 400, 'BLOB_UPLOAD_INVALID', /fifo/],
      ['a path twice', await spoiled((e) => [...e, { name: 'index.json', data: '{}' }]), 400, 'BLOB_UPLOAD_INVALID', /holds index.json twice/],
      ['a huge header', await spoiled((e) => [{ name: 'big', data: 'x', pax: { comment: 'x'.repeat(5 * 1024 * 1024) } }, ...e]), 400, 'BLOB_UPLOAD_INVALID', /Header exceeds max size/],
      ['a layer whose digest does not match', await spoiled((e) => e.map((x) => (x.name === layerPath ? { ...x, data: Buffer.from('another layer') } : x))), 400, 'DIGEST_INVALID', /has the digest/],
      ['a missing layer', await spoiled((e) => e.filter((x) => x.name !== layerPath)), 400, 'BLOB_UPLOAD_INVALID', /neither in the archive nor in team\/victim/],
      ['a missing manifest', await spoiled((e) => e.filter((x) => x.name !== `blobs/sha256/${image.digest.slice(7)}`)), 400, 'BLOB_UPLOAD_INVALID', /is not in the archive/],
      ['a manifest that is not JSON', await spoiled((e) => [...e.filter((x) => x.name !== 'index.json'), { name: 'index.json', data: '{"schemaVersion":2,"manifests":[' }]), 400, 'MANIFEST_INVALID', /index.json/],
      ['neither format', await tarOf([{ name: 'readme.txt', data: 'hello' }]), 400, 'BLOB_UPLOAD_INVALID', /neither index.json/],
      ['a truncated archive', valid.subarray(0, Math.floor(valid.length / 2) + 100), 400, 'BLOB_UPLOAD_INVALID', /truncated|end/],
      ['a truncated gzip stream', (await tarOf(entries, { gzip: true })).subarray(0, 600), 400, 'BLOB_UPLOAD_INVALID', /truncated|gzip|end/],
      ['not a tar', Buffer.from('this is not a tar archive, just some text that goes on'.repeat(20)), 400, 'BLOB_UPLOAD_INVALID', /Invalid tar header|not a tar/],
      ['a 10,000-entry bomb', await tarOf([...entries, ...bomb]), 400, 'BLOB_UPLOAD_INVALID', /more than 5000 entries \(archives.maxentries\)/],
    ];
    // The size in a descriptor lies (the digest is right): refused too.
    const lyingIndex = JSON.parse(entries.find((e) => e.name === 'index.json')!.data!.toString());
    lyingIndex.manifests[0].size += 1;
    cases.push(['a descriptor with the wrong size', await spoiled((e) => e.map((x) => (x.name === 'index.json' ? { ...x, data: JSON.stringify(lyingIndex) } : x))), 400, 'SIZE_INVALID', /not the \d+ its descriptor says/]);
    for (const [what, archive, status, code, message] of cases) {
      const res = await importArchive(reg.app, archive, { repository: 'team/victim' });
      expect(res.statusCode, `${what}: ${res.body}`).toBe(status);
      expect(errorCode(res), what).toBe(code);
      expect((res.json() as { errors: Array<{ message: string }> }).errors[0]!.message, what).toMatch(message);
      expect(await storeFiles(reg.root), what).toEqual(before);
      expect(await catalog(reg.app), what).toEqual(['team/kept']);
    }
    // The same archive, unspoiled, goes in.
    expect((await importArchive(reg.app, valid, { repository: 'team/victim' })).statusCode).toBe(201);
  });

  it('discards what it staged of large files when it refuses, and reads back what it could not keep in memory', async () => {
    reg = await startRegistry();
    // Layers above 1 MiB are staged in the store as they stream in; the refusal must remove them.
    const big = await testImage('staged', 'amd64', 2, 1536 * 1024);
    const entries = ociLayoutEntries([{ manifest: big.manifest, mediaType: OCI_MANIFEST }], blobsOf(big), { indexFirst: false });
    const lying = entries.map((e) => (e.data !== undefined && Buffer.from(e.data).equals(big.layers[1]!) ? { ...e, data: filler(1536 * 1024, 'other') } : e));
    const refused = await importArchive(reg.app, await tarOf(lying), { repository: 'team/staged' });
    expect(refused.statusCode, refused.body).toBe(400);
    expect(errorCode(refused)).toBe('DIGEST_INVALID');
    expect(await storeFiles(reg.root)).toEqual([]);
    // 20 files of 1 MiB spend the memory budget (16 MiB): the manifest and config after them are staged, then read back.
    const padding = Array.from({ length: 20 }, (_, i) => filler(1024 * 1024 - 1, `pad ${i}`));
    const many = ociLayoutEntries([{ manifest: big.manifest, mediaType: OCI_MANIFEST, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }], [...padding, ...blobsOf(big)], { indexFirst: false });
    const ok = await importArchive(reg.app, await tarOf(many), { repository: 'team/staged' });
    expect(ok.statusCode, ok.body).toBe(201);
    await expectPulled(reg.app, 'team/staged', 'v1', big.digest, [big.config, ...big.layers]);
    // The padding no image uses is not kept: the store holds the config, the layers and the manifest.
    const stored = await storeFiles(reg.root);
    expect(stored.filter((f) => f.startsWith('uploads/'))).toEqual([]);
    expect(stored.filter((f) => f.startsWith('blobs/')).map((f) => `sha256:${f.split('/').pop()}`).sort()).toEqual([...blobsOf(big).map(sha256)].sort());
  });

  it('refuses a docker save whose manifest.json or config does not hold together, and two images under one tag', async () => {
    reg = await startRegistry();
    const image = await testImage('shape');
    const other = await testImage('shape-2');
    const saved = dockerSaveEntries([{ image, repoTags: ['team/shape:v1'] }]);
    const withManifest = (doc: unknown) => [...saved.filter((e) => e.name !== 'manifest.json'), { name: 'manifest.json', data: JSON.stringify(doc) }];
    const manifest = JSON.parse(saved.find((e) => e.name === 'manifest.json')!.data!.toString()) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
    const configName = manifest[0]!.Config;
    const withConfig = (doc: unknown) => saved.map((e) => (e.name === configName ? { ...e, data: JSON.stringify(doc) } : e));
    const cases: Array<[string, TarEntry[], RegExp]> = [
      ['manifest.json not a list', withManifest({ Config: configName }), /manifest.json must be a non-empty array/],
      ['manifest.json not JSON', [...saved.filter((e) => e.name !== 'manifest.json'), { name: 'manifest.json', data: '[{' }], /manifest.json is not valid JSON/],
      ['no Config', withManifest([{ ...manifest[0], Config: 7 }]), /Config must be a path/],
      ['Layers not paths', withManifest([{ ...manifest[0], Layers: [1] }]), /Layers must be a list of paths/],
      ['a config not there', withManifest([{ ...manifest[0], Config: 'missing.json' }]), /the config missing.json is not in the archive/],
      ['a layer not there', withManifest([{ ...manifest[0], Layers: ['nowhere/layer.tar', manifest[0]!.Layers[1]] }]), /the layer nowhere\/layer.tar is not in the archive/],
      ['a config without diff IDs', withConfig({ architecture: 'amd64', os: 'linux' }), /the config has no rootfs.diff_ids/],
      ['a config with too few diff IDs', withConfig({ rootfs: { type: 'layers', diff_ids: [sha256(image.layers[0]!)] } }), /the config lists 1 layers, manifest.json 2/],
      ['a path out of the archive in manifest.json', withManifest([{ ...manifest[0], Config: '../etc/passwd' }]), /climbs out of the archive/],
    ];
    for (const [what, entries, message] of cases) {
      const res = await importArchive(reg.app, await tarOf(entries));
      expect(res.statusCode, `${what}: ${res.body}`).toBe(400);
      expect((res.json() as { errors: Array<{ message: string }> }).errors[0]!.message, what).toMatch(message);
    }
    const twice = await importArchive(reg.app, await tarOf(dockerSaveEntries([{ image, repoTags: ['team/shape:v1'] }, { image: other, repoTags: ['team/shape:v1'] }])));
    expect(twice.statusCode).toBe(400);
    expect(twice.body).toMatch(/gives the tag team\/shape:v1 to two images/);
    // An OCI layout's manifest larger than the manifest limit (4 MiB) is refused, not read.
    const huge = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: JSON.parse(image.manifest.toString()).config, layers: [], annotations: { pad: 'x'.repeat(4 * 1024 * 1024) } }));
    const layout = ociLayoutEntries([{ manifest: huge, mediaType: OCI_MANIFEST }], [image.config]);
    const tooBig = await importArchive(reg.app, await tarOf(layout), { repository: 'team/shape' });
    expect(tooBig.statusCode).toBe(400);
    expect(tooBig.body).toMatch(/the manifest is larger than 4194304 bytes/);
    expect(await catalog(reg.app)).toEqual([]);
    expect((await storeFiles(reg.root)).filter((f) => !f.startsWith('_'))).toEqual([]);
  });

  it('refuses a docker save whose layer is not the one its config names', async () => {
    reg = await startRegistry();
    const image = await testImage('lying');
    const entries = dockerSaveEntries([{ image, repoTags: ['team/lying:v1'] }]);
    const layer = entries.find((e) => e.name.endsWith('/layer.tar'))!;
    layer.data = Buffer.from('not the layer the config lists');
    const res = await importArchive(reg.app, await tarOf(entries));
    expect(res.statusCode).toBe(400);
    expect(errorCode(res)).toBe('DIGEST_INVALID');
    expect(res.body).toMatch(/not the config's diff ID/);
    expect(await catalog(reg.app)).toEqual([]);
    expect((await storeFiles(reg.root)).filter((f) => f.startsWith('uploads/') || f.startsWith('blobs/'))).toEqual([]);
  });

  it('refuses an archive larger than archives.maxsize, as sent and once decompressed', async () => {
    reg = await startRegistry({ archives: { maxsize: 64 * 1024 } });
    const image = await testImage('big');
    const padding = { name: 'padding', data: Buffer.alloc(200 * 1024) };
    const entries = [...dockerSaveEntries([{ image, repoTags: ['team/big:v1'] }]), padding];
    for (const gzip of [false, true]) {
      const archive = await tarOf(entries, { gzip });
      // Zeros compress well: the gzip form is small as sent, and too large once decompressed.
      if (gzip) expect(archive.length).toBeLessThan(64 * 1024);
      const res = await importArchive(reg.app, archive);
      expect(res.statusCode, res.body).toBe(413);
      expect(errorCode(res)).toBe('SIZE_INVALID');
      expect(res.body).toMatch(gzip ? /decompressed, at most 65536 bytes; archives.maxsize/ : /as sent, at most 65536 bytes; archives.maxsize/);
    }
    expect(await catalog(reg.app)).toEqual([]);
    expect((await storeFiles(reg.root)).filter((f) => f.startsWith('uploads/'))).toEqual([]);
  });

  it('refuses imports in read-only mode', async () => {
    const writable = await startRegistry();
    const root = writable.root;
    await writable.close();
    reg = await startRegistry({ storage: { maintenance: { readonly: { enabled: true } } } }, root);
    const image = await testImage('ro');
    const res = await importArchive(reg.app, await tarOf(dockerSaveEntries([{ image, repoTags: ['team/ro:v1'] }])));
    expect(res.statusCode).toBe(405);
    expect(errorCode(res)).toBe('UNSUPPORTED');
  });
});

describe('who may import and export', () => {
  it('needs a signed-in user with push on every repository the archive writes', async () => {
    const { app, root } = await withUsers();
    const image = await testImage('acl');
    const tar = await tarOf(dockerSaveEntries([{ image, repoTags: ['team/acl:v1'] }]));
    const before = await storeFiles(root);

    const anonymous = await importArchive(app, tar);
    expect(anonymous.statusCode).toBe(401);
    const wrong = await importArchive(app, tar, {}, { authorization: basic('alice', 'not-her-password') });
    expect(wrong.statusCode).toBe(401);
    // bob may pull team/**, not push: refused, whether the form names the repository (before any byte is staged) or the archive does.
    for (const fields of [{ repository: 'team/acl' }, {}] as Array<Record<string, string>>) {
      const res = await importArchive(app, tar, fields, { authorization: basic('bob') });
      expect(res.statusCode, res.body).toBe(403);
      expect(errorCode(res)).toBe('DENIED');
      expect(res.json()).toMatchObject({ errors: [{ detail: [{ Type: 'repository', Name: 'team/acl', Action: 'push' }] }] });
    }
    // alice may push team/** but not elsewhere: an archive that also names another repository is refused whole.
    const mixed = await tarOf(dockerSaveEntries([{ image, repoTags: ['team/acl:v1', 'other/acl:v1'] }]));
    const res = await importArchive(app, mixed, {}, { authorization: basic('alice') });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ errors: [{ detail: [{ Name: 'other/acl' }] }] });
    expect(await storeFiles(root)).toEqual(before);

    const ok = await importArchive(app, tar, {}, { authorization: basic('alice') });
    expect(ok.statusCode, ok.body).toBe(201);
    await expectPulled(app, 'team/acl', 'v1', image.digest, [image.config, ...image.layers], basic('alice'));
  });

  it('takes the UI session as a credential, with its CSRF value, and never from another origin', async () => {
    const { app } = await withUsers();
    const login = await app.inject({ method: 'POST', url: '/ui/api/login', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ username: 'alice', password: 'alice-pw' }) });
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const csrf = (login.json() as { csrf: string }).csrf;
    const image = await testImage('ui');
    const tar = await tarOf(dockerSaveEntries([{ image, repoTags: ['team/ui:v1'] }]));
    const noCsrf = await importArchive(app, tar, {}, { cookie });
    expect(noCsrf.statusCode).toBe(403);
    expect(noCsrf.body).toMatch(/CSRF/);
    const crossOrigin = await importArchive(app, tar, {}, { cookie, 'x-ocireg-csrf': csrf, origin: 'https://evil.example' });
    expect(crossOrigin.statusCode).toBe(403);
    expect(await catalog(app, basic('alice'))).toEqual([]);
    const ok = await importArchive(app, tar, {}, { cookie, 'x-ocireg-csrf': csrf });
    expect(ok.statusCode, ok.body).toBe(201);
    // The download link of the image page works with the cookie alone (a GET).
    const exported = await app.inject({ method: 'GET', url: '/api/v1/export/team/ui:v1', headers: { cookie } });
    expect(exported.statusCode).toBe(200);
  });

  it('exports only to a caller with pull on the repository', async () => {
    const { app } = await withUsers();
    const image = await testImage('pull');
    expect((await importArchive(app, await tarOf(dockerSaveEntries([{ image, repoTags: ['team/pull:v1'] }])), {}, { authorization: basic('alice') })).statusCode).toBe(201);
    const url = '/api/v1/export/team/pull:v1?format=oci';
    const anonymous = await app.inject({ method: 'GET', url });
    expect(anonymous.statusCode).toBe(401);
    const carol = await app.inject({ method: 'GET', url, headers: { authorization: basic('carol') } });
    expect(carol.statusCode).toBe(403);
    expect(errorCode(carol)).toBe('DENIED');
    const bob = await app.inject({ method: 'GET', url, headers: { authorization: basic('bob') } });
    expect(bob.statusCode).toBe(200);
    expect(bob.headers['content-type']).toBe('application/x-tar');
  });
});

describe('exporting archives', () => {
  it('writes a docker archive (an OCI layout with docker\'s manifest.json) with its exact length, that imports back to the same image', async () => {
    reg = await startRegistry();
    const image = await testImage('export');
    expect((await importArchive(reg.app, await tarOf(dockerSaveEntries([{ image, repoTags: ['team/export:v1'] }])))).statusCode).toBe(201);
    const res = await reg.app.inject({ method: 'GET', url: '/api/v1/export/team/export:v1?format=docker' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-tar');
    expect(res.headers['content-disposition']).toBe('attachment; filename="team_export_v1.tar"');
    expect(res.headers['docker-content-digest']).toBe(image.digest);
    expect(Number(res.headers['content-length'])).toBe(res.rawPayload.length);
    const head = await reg.app.inject({ method: 'HEAD', url: '/api/v1/export/team/export:v1?format=docker' });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe(res.headers['content-length']);
    expect(head.rawPayload.length).toBe(0);
    const files = await entriesOf(res.rawPayload);
    const hex = (b: Buffer) => sha256(b).slice(7);
    expect([...files.keys()].sort()).toEqual(
      ['blobs/', 'blobs/sha256/', 'oci-layout', 'index.json', 'manifest.json', ...blobsOf(image).map((b) => `blobs/sha256/${hex(b)}`)].sort(),
    );
    for (const blob of blobsOf(image)) expect(files.get(`blobs/sha256/${hex(blob)}`)!.data.equals(blob)).toBe(true);
    expect(JSON.parse(files.get('manifest.json')!.data.toString())).toEqual([
      { Config: `blobs/sha256/${hex(image.config)}`, RepoTags: ['localhost:80/team/export:v1'], Layers: image.layers.map((l) => `blobs/sha256/${hex(l)}`) },
    ]);
    expect(JSON.parse(files.get('index.json')!.data.toString())).toEqual({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: image.digest, size: image.manifest.length, annotations: { 'io.containerd.image.name': 'localhost:80/team/export:v1', 'org.opencontainers.image.ref.name': 'v1' } }],
    });
    // Back in, elsewhere: the same image.
    const again = await importArchive(reg.app, res.rawPayload, { repository: 'team/copy' });
    expect(again.statusCode, again.body).toBe(201);
    expect(again.json()).toEqual({ imported: [{ repository: 'team/copy', tag: 'v1', digest: image.digest, mediaType: OCI_MANIFEST }] });
  });

  it('keeps an index whole in an OCI archive, and picks a platform for a docker archive', async () => {
    reg = await startRegistry();
    const amd = await testImage('plat', 'amd64');
    const arm = await testImage('plat', 'arm64');
    const index = indexOf([{ image: amd, arch: 'amd64' }, { image: arm, arch: 'arm64' }]);
    const entries = ociLayoutEntries([{ manifest: index, mediaType: OCI_INDEX, annotations: { 'org.opencontainers.image.ref.name': 'm' } }], [...blobsOf(amd), ...blobsOf(arm)]);
    expect((await importArchive(reg.app, await tarOf(entries), { repository: 'team/plat' })).statusCode).toBe(201);

    const oci = await reg.app.inject({ method: 'GET', url: `/api/v1/export/team/plat@${sha256(index)}?format=oci` });
    expect(oci.statusCode).toBe(200);
    expect(oci.headers['content-disposition']).toMatch(/^attachment; filename="team_plat_sha256-[0-9a-f]{12}\.oci\.tar"$/);
    const files = await entriesOf(oci.rawPayload);
    expect(JSON.parse(files.get('index.json')!.data.toString()).manifests).toEqual([{ mediaType: OCI_INDEX, digest: sha256(index), size: index.length }]);
    for (const blob of [index, ...blobsOf(amd), ...blobsOf(arm)]) expect(files.has(`blobs/sha256/${sha256(blob).slice(7)}`)).toBe(true);
    expect(files.has('manifest.json')).toBe(false);

    const refused = await reg.app.inject({ method: 'GET', url: '/api/v1/export/team/plat:m?format=docker' });
    expect(refused.statusCode).toBe(400);
    expect(refused.body).toMatch(/give platform= \(one of linux\/amd64, linux\/arm64\)/);
    const docker = await reg.app.inject({ method: 'GET', url: '/api/v1/export/team/plat:m?format=docker&platform=linux/arm64' });
    expect(docker.statusCode).toBe(200);
    const saved = await entriesOf(docker.rawPayload);
    expect(JSON.parse(saved.get('manifest.json')!.data.toString())[0].Config).toBe(`blobs/sha256/${sha256(arm.config).slice(7)}`);
    expect(saved.has(`blobs/sha256/${sha256(amd.config).slice(7)}`)).toBe(false);
    const none = await reg.app.inject({ method: 'GET', url: '/api/v1/export/team/plat:m?format=oci&platform=linux/s390x' });
    expect(none.statusCode).toBe(404);
    expect(none.body).toMatch(/no linux\/s390x platform/);
    // A single image is exported for its own platform only.
    const child = await reg.app.inject({ method: 'GET', url: `/api/v1/export/team/plat@${arm.digest}?platform=linux/arm64` });
    expect(child.statusCode).toBe(200);
    const other = await reg.app.inject({ method: 'GET', url: `/api/v1/export/team/plat@${arm.digest}?platform=linux/amd64` });
    expect(other.statusCode).toBe(404);
    expect(other.body).toMatch(/the image is for linux\/arm64, not linux\/amd64/);
  });

  it('answers bad requests with the error, before any byte of a tar', async () => {
    reg = await startRegistry();
    const image = await testImage('errs');
    expect((await importArchive(reg.app, await tarOf(dockerSaveEntries([{ image, repoTags: ['team/errs:v1'] }])))).statusCode).toBe(201);
    const cases: Array<[string, number, string]> = [
      ['/api/v1/export/team/errs:nope', 404, 'MANIFEST_UNKNOWN'],
      ['/api/v1/export/team/none:v1', 404, 'MANIFEST_UNKNOWN'],
      ['/api/v1/export/team/errs:v1?format=zip', 400, 'UNSUPPORTED'],
      ['/api/v1/export/team/errs:v1?platform=linux', 400, 'UNSUPPORTED'],
      ['/api/v1/export/Team/Errs:v1', 400, 'NAME_INVALID'],
      ['/api/v1/export/team/errs@sha256:abc', 400, 'NAME_INVALID'],
    ];
    for (const [url, status, code] of cases) {
      const res = await reg.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(status);
      expect(errorCode(res), url).toBe(code);
    }
    // A bare name is its latest tag, which this repository lacks.
    expect((await reg.app.inject({ method: 'GET', url: '/api/v1/export/team/errs' })).json()).toMatchObject({ errors: [{ code: 'MANIFEST_UNKNOWN' }] });
    // A blob gone from the repository: the answer says so, rather than a tar cut short.
    await reg.app.inject({ method: 'DELETE', url: `/v2/team/errs/blobs/${sha256(image.layers[0]!)}` });
    const res = await reg.app.inject({ method: 'GET', url: '/api/v1/export/team/errs:v1' });
    expect(res.statusCode).toBe(404);
    expect(errorCode(res)).toBe('BLOB_UNKNOWN');
  });

  it('cuts the tar short when a blob the index lists is gone from the store, and goes on serving', async () => {
    reg = await startRegistry();
    const image = await testImage('cut', 'amd64', 2, 2 * 1024 * 1024);
    expect((await importArchive(reg.app, await tarOf(dockerSaveEntries([{ image, repoTags: ['team/cut:v1', 'team/cut:latest'] }])))).statusCode).toBe(201);
    const full = await reg.app.inject({ method: 'GET', url: '/api/v1/export/team/cut:latest' });
    expect(full.statusCode).toBe(200);
    // The second layer's bytes vanish from the store behind the index's back.
    const hex = sha256(image.layers[1]!).slice(7);
    await rm(join(reg.root, 'blobs', 'sha256', hex.slice(0, 2), hex));
    // The head goes out with the whole length, and the body stops before it: the client sees a failed download.
    await expect(reg.app.inject({ method: 'GET', url: '/api/v1/export/team/cut:v1' })).rejects.toThrow(/response destroyed before completion/);
    expect((await reg.app.inject({ method: 'GET', url: '/v2/' })).statusCode).toBe(200);
  });

  it('counts imports and exports in the metrics', async () => {
    reg = await startRegistry({ http: { debug: { addr: '127.0.0.1:0', prometheus: { enabled: true } } } });
    const image = await testImage('metrics');
    const tar = await tarOf(dockerSaveEntries([{ image, repoTags: ['team/m:v1', 'team/m:v2'] }]));
    expect((await importArchive(reg.app, tar)).statusCode).toBe(201);
    const exported = await reg.app.inject({ method: 'GET', url: '/api/v1/export/team/m:v1' });
    expect(exported.statusCode).toBe(200);
    const text = (await reg.app.metrics!.exposition()).body;
    const value = (name: string, direction: string) => Number(new RegExp(`^${name}\\{direction="${direction}"\\} (\\d+)`, 'm').exec(text)?.[1]);
    expect(value('registry_archive_images_total', 'import')).toBe(1);
    expect(value('registry_archive_bytes_total', 'import')).toBe(tar.length);
    expect(value('registry_archive_images_total', 'export')).toBe(1);
    expect(value('registry_archive_bytes_total', 'export')).toBe(exported.rawPayload.length);
  });
});
