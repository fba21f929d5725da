// The web UI in a real browser: Debian's headless Chromium, driven by playwright-core, against the
// built registry with htpasswd users. Sign in, browse to an image and see its layers, platforms
// and labels, copy the pull command, delete a tag; import a docker save archive through the drop
// zone and download it back from the image page; a user without push sees the import refused; an
// XSS attempt in a label is shown as text; a screenshot of each page goes to test-results/ui/.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { dockerSaveEntries, entriesOf, tarOf, testImage, type TestImage } from '../archive/archives.js';
import { PROJECT_ROOT } from '../support/built-server.js';
import { basic, startConfiguredRegistry, writeHtpasswd, type ConfiguredRegistry } from './auth-support.js';
import { sha256, tempFolder } from './harness.js';

const CHROMIUM = process.env.OCIREG_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = join(PROJECT_ROOT, 'test-results', 'ui');
const XSS_LABEL = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

let registry: ConfiguredRegistry;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let work: string;
/** The image imported through the page, the archive it came in, and what the import answered. */
let archived: { image: TestImage; file: string; digest?: string };
const alice = () => basic('alice', 'alice-Password-1');

async function push(path: string, body: Buffer, contentType: string, method = 'PUT'): Promise<void> {
  const res = await fetch(`${registry.url}${path}`, { method, headers: { authorization: alice(), 'content-type': contentType }, body, signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer();
  expect(res.status, `${method} ${path}`).toBe(201);
}

/** Pushes a one-layer image for a platform; returns its manifest (digest and size). */
async function pushImage(repo: string, platform: { os: string; architecture: string }, label: string): Promise<{ digest: string; size: number }> {
  const config = Buffer.from(
    JSON.stringify({
      ...platform,
      created: '2026-11-30T12:00:00Z',
      config: { Entrypoint: ['/bin/server'], Labels: { 'org.opencontainers.image.title': label } },
      history: [{ created: '2026-11-30T12:00:00Z', created_by: 'COPY server /bin/server' }],
      rootfs: { type: 'layers', diff_ids: [] },
    }),
  );
  const layer = Buffer.from(`a layer for ${platform.architecture}`);
  for (const blob of [config, layer]) await push(`/v2/${repo}/blobs/uploads/?digest=sha256:${sha256(blob)}`, blob, 'application/octet-stream', 'POST');
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(config)}`, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${sha256(layer)}`, size: layer.length }],
    }),
  );
  const digest = `sha256:${sha256(manifest)}`;
  await push(`/v2/${repo}/manifests/${digest}`, manifest, OCI_MANIFEST);
  return { digest, size: manifest.length };
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  work = await tempFolder('ui-', inject('e2eWork'));
  const htpasswd = join(work, 'htpasswd');
  await writeHtpasswd(htpasswd, { alice: 'alice-Password-1', bob: 'bob-Password-1' });
  registry = await startConfiguredRegistry({
    work,
    config: {
      auth: { htpasswd: { realm: 'ocireg', path: htpasswd } },
      access: { repositories: { 'team/**': { users: { alice: ['pull', 'push', 'delete'], bob: ['pull'] } } } },
    },
  });
  // A two-platform image, tagged twice.
  const amd = await pushImage('team/web', { os: 'linux', architecture: 'amd64' }, XSS_LABEL);
  const arm = await pushImage('team/web', { os: 'linux', architecture: 'arm64' }, 'web server');
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: amd.digest, size: amd.size, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: OCI_MANIFEST, digest: arm.digest, size: arm.size, platform: { os: 'linux', architecture: 'arm64' } },
      ],
    }),
  );
  await push('/v2/team/web/manifests/v1', index, OCI_INDEX);
  await push('/v2/team/web/manifests/stable', index, OCI_INDEX);
  // A docker save archive (the older format: <id>/layer.tar folders, manifest.json last) to import.
  const image = await testImage('team/imported');
  const file = join(work, 'imported.tar');
  await writeFile(file, await tarOf(dockerSaveEntries([{ image, repoTags: ['somewhere/else:latest'] }])));
  archived = { image, file };
  await mkdir(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--headless'] });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: registry.url });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
});

afterAll(async () => {
  await browser?.close();
  await registry?.stop();
});

describe('the web UI in Chromium', () => {
  it('asks an anonymous visitor to sign in, refuses a wrong password, and signs in', async () => {
    await page.goto(`${registry.url}/ui/`);
    await page.waitForSelector('form.signin');
    await shot('1-sign-in');
    await page.fill('input[name=username]', 'alice');
    await page.fill('input[name=password]', 'not-her-password');
    await page.click('form.signin button[type=submit]');
    await expect.poll(() => page.textContent('form.signin [role=alert]')).toContain('wrong user name or password');
    await page.fill('input[name=password]', 'alice-Password-1');
    await page.click('form.signin button[type=submit]');
    await page.waitForSelector('#repositories');
    expect(await page.textContent('#user')).toBe('alice');
    // The browser holds the session as an HttpOnly cookie, and nothing in its storage.
    const cookies = await context.cookies();
    expect(cookies.map((c) => [c.name, c.httpOnly, c.sameSite])).toEqual([['ocireg_session', true, 'Strict']]);
    expect(await page.evaluate(() => {
      const w = globalThis as unknown as { localStorage: { length: number }; sessionStorage: { length: number } };
      return [w.localStorage.length, w.sessionStorage.length];
    })).toEqual([0, 0]);
    expect(await page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie)).toBe('');
  });

  it('lists repositories, searches them, and shows a repository\'s tags', async () => {
    await page.goto(`${registry.url}/ui/#/`);
    await page.waitForSelector('#repositories a.repo');
    expect(await page.$$eval('#repositories a.repo', (links) => links.map((a) => a.textContent))).toEqual(['team/web']);
    await shot('2-repositories');
    await page.fill('#search', 'nothing-like-it');
    await page.click('form.row button[type=submit]');
    await expect.poll(() => page.textContent('main')).toContain('No repository matches.');
    await page.goto(`${registry.url}/ui/#/r/team/web`);
    await page.waitForSelector('#tags tr[data-tag]');
    expect(await page.$$eval('#tags a.tag', (links) => links.map((a) => a.textContent))).toEqual(['stable', 'v1']);
    await shot('3-tags');
  });

  it('shows an index\'s platforms, an image\'s config, layers and labels as text, and copies the pull command', async () => {
    await page.click('#tags a.tag >> text=v1');
    await page.waitForSelector('#children a.platform');
    expect(await page.$$eval('#children a.platform', (links) => links.map((a) => a.textContent))).toEqual(['linux/amd64', 'linux/arm64']);
    await shot('4-index');
    await page.click('#children a.platform >> text=linux/amd64');
    await page.waitForSelector('#layers');
    expect(await page.$$eval('#layers tbody tr', (rows) => rows.length)).toBe(1);
    expect(await page.textContent('main')).toContain('/bin/server');
    expect(await page.textContent('main')).toContain('COPY server /bin/server');
    // The label is shown as the text it is: no element was made of it and no script ran.
    expect(await page.textContent('#labels')).toContain(XSS_LABEL);
    expect(await page.$$('main img')).toHaveLength(0);
    expect(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss)).toBeUndefined();
    await shot('5-image');
    const command = await page.textContent('#pull-command');
    expect(command).toMatch(new RegExp(`^docker pull ${registry.host}/team/web@sha256:[a-f0-9]{64}$`));
    await page.click('#copy');
    await expect.poll(() => page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText())).toBe(command);
  });

  it('deletes a tag, and the list shows it gone', async () => {
    await page.goto(`${registry.url}/ui/#/r/team/web`);
    await page.waitForSelector('#tags tr[data-tag=stable]');
    page.once('dialog', (dialog) => void dialog.accept());
    await page.click('#tags tr[data-tag=stable] button.danger');
    await expect.poll(() => page.$$eval('#tags a.tag', (links) => links.map((a) => a.textContent))).toEqual(['v1']);
    await shot('6-tag-deleted');
    const res = await fetch(`${registry.url}/v2/team/web/manifests/stable`, { method: 'HEAD', headers: { authorization: alice(), accept: OCI_INDEX } });
    expect(res.status).toBe(404);
  });

  it('imports a docker save archive chosen in the drop zone, with a progress bar, and lists the new tag', async () => {
    await page.goto(`${registry.url}/ui/#/`);
    await page.waitForSelector('#drop input#archive');
    await page.fill('#import-repository', 'team/imported');
    await page.fill('#import-tag', 'v2');
    const answered = page.waitForResponse((res) => res.url().endsWith('/api/v1/import') && res.request().method() === 'POST');
    await page.setInputFiles('input#archive', archived.file);
    const res = await answered;
    expect(res.status()).toBe(201);
    const body = (await res.json()) as { imported: Array<{ repository: string; tag?: string; digest: string; mediaType: string }> };
    // The form's repository and tag, not the name the archive carries (somewhere/else:latest).
    expect(body.imported).toHaveLength(1);
    expect(body.imported[0]).toMatchObject({ repository: 'team/imported', tag: 'v2', digest: expect.stringMatching(/^sha256:[a-f0-9]{64}$/) });
    archived.digest = body.imported[0]!.digest;
    await expect.poll(() => page.$eval('#progress', (bar) => [(bar as unknown as { value: number }).value, (bar as unknown as { hidden: boolean }).hidden])).toEqual([100, false]);
    await page.waitForSelector('#imported li');
    expect(await page.$$eval('#imported li a', (links) => links.map((a) => a.textContent))).toEqual(['team/imported:v2']);
    expect(await page.textContent('#import-status')).toContain('Imported 1 image(s)');
    expect(await page.$$('#import-status [role=alert]')).toHaveLength(0);
    // The list of repositories below the drop zone is reloaded and has it.
    await expect.poll(() => page.$$eval('#repositories a.repo', (links) => links.map((a) => a.textContent))).toEqual(['team/imported', 'team/web']);
    await shot('7-imported');
    // The link goes to the image; from there, its repository shows the new tag.
    await page.click('#imported a >> text=team/imported:v2');
    await page.waitForSelector('#downloads a');
    expect(await page.textContent('main h1')).toBe(`team/imported@${archived.digest!.slice(7, 19)}`);
    await page.click('main a >> text=← team/imported');
    await page.waitForSelector('#tags tr[data-tag=v2]');
    expect(await page.$$eval('#tags a.tag', (links) => links.map((a) => a.textContent))).toEqual(['v2']);
    expect(await page.getAttribute('#tags tr[data-tag=v2] code', 'title')).toBe(archived.digest);
    await shot('8-imported-tags');
  });

  it('downloads the imported image from its page as a docker archive holding manifest.json and index.json', async () => {
    await page.click('#tags a.tag >> text=v2');
    await page.waitForSelector('#downloads a');
    expect(await page.$$eval('#downloads a', (links) => links.map((a) => a.textContent))).toEqual(['docker archive', 'OCI archive']);
    await page.waitForSelector('#layers');
    expect(await page.$$eval('#layers tbody tr', (rows) => rows.length)).toBe(archived.image.layers.length);
    await shot('9-imported-image');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#downloads a >> text="docker archive"')]);
    expect(await download.failure()).toBeNull();
    expect(download.suggestedFilename()).toMatch(/^team_imported_sha256-[a-f0-9]{12}\.tar$/);
    const saved = join(work, 'downloaded.tar');
    await download.saveAs(saved);
    const entries = await entriesOf(await readFile(saved));
    expect(entries.has('manifest.json')).toBe(true);
    expect(entries.has('index.json')).toBe(true);
    expect(entries.has('oci-layout')).toBe(true);
    // index.json names the imported manifest, and the tar holds its bytes under that digest.
    const index = JSON.parse(entries.get('index.json')!.data.toString()) as { manifests: Array<{ digest: string; size: number }> };
    expect(index.manifests.map((m) => m.digest)).toEqual([archived.digest]);
    const hex = archived.digest!.slice('sha256:'.length);
    const manifestBytes = entries.get(`blobs/sha256/${hex}`)?.data;
    expect(manifestBytes, 'the manifest blob').toBeDefined();
    expect(`sha256:${sha256(manifestBytes!)}`).toBe(archived.digest);
    expect(manifestBytes!.length).toBe(index.manifests[0]!.size);
    // docker's manifest.json points at the config and layers that came in the archive, byte for byte.
    const saveManifest = JSON.parse(entries.get('manifest.json')!.data.toString()) as Array<{ Config: string; Layers: string[] }>;
    expect(saveManifest).toHaveLength(1);
    expect(entries.get(saveManifest[0]!.Config)?.data.equals(archived.image.config)).toBe(true);
    expect(saveManifest[0]!.Layers.map((l) => entries.get(l)?.data.toString('base64'))).toEqual(archived.image.layers.map((l) => l.toString('base64')));
  });

  it('signs out, after which the pages ask to sign in again', async () => {
    await page.click('#signout');
    await page.waitForSelector('form.signin');
    expect(await context.cookies()).toEqual([]);
    await page.goto(`${registry.url}/ui/#/r/team/web`);
    await expect.poll(() => page.textContent('main')).toMatch(/Sign in/);
  });

  it('shows a user without push the import refused, and imports nothing', async () => {
    await page.goto(`${registry.url}/ui/#/signin`);
    await page.waitForSelector('form.signin');
    await page.fill('input[name=username]', 'bob');
    await page.fill('input[name=password]', 'bob-Password-1');
    await page.click('form.signin button[type=submit]');
    await page.waitForSelector('#repositories');
    expect(await page.textContent('#user')).toBe('bob');
    await page.fill('#import-repository', 'team/bobs');
    await page.fill('#import-tag', 'v1');
    const answered = page.waitForResponse((res) => res.url().endsWith('/api/v1/import') && res.request().method() === 'POST');
    await page.setInputFiles('input#archive', archived.file);
    expect((await answered).status()).toBe(403);
    await expect.poll(() => page.textContent('#import-status [role=alert]')).toContain('no push to team/bobs');
    expect(await page.$$('#imported')).toHaveLength(0);
    await shot('10-import-refused');
    // A large archive too: refused before its body is read, the answer still reaches the page (the
    // browser, still sending, reads no answer until the connection ends or the body is taken in).
    const image = await testImage('bobs-big', 'amd64', 1);
    image.layers[0] = await tarOf([{ name: 'big.bin', data: randomBytes(32 * 1024 * 1024) }]);
    const big = join(work, 'big.tar');
    await writeFile(big, await tarOf(dockerSaveEntries([{ image, repoTags: [] }])));
    const refused = page.waitForResponse((res) => res.url().endsWith('/api/v1/import') && res.request().method() === 'POST');
    await page.setInputFiles('input#archive', big);
    expect((await refused).status()).toBe(403);
    await expect.poll(() => page.textContent('#import-status [role=alert]')).toContain('no push to team/bobs');
    expect(await page.$$('#imported')).toHaveLength(0);
    const tags = await fetch(`${registry.url}/v2/team/bobs/tags/list`, { headers: { authorization: alice() } });
    await tags.arrayBuffer();
    expect(tags.status).toBe(404);
    const catalog = await fetch(`${registry.url}/v2/_catalog`, { headers: { authorization: alice() } });
    expect(((await catalog.json()) as { repositories: string[] }).repositories).toEqual(['team/imported', 'team/web']);
  });
});
