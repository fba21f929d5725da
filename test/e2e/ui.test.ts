// The web UI in a real browser: Debian's headless Chromium, driven by playwright-core, against the
// built registry with htpasswd users. Sign in, browse to an image and see its layers, platforms
// and labels, copy the pull command, delete a tag; an XSS attempt in a label is shown as text; a
// screenshot of each page goes to test-results/ui/.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
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
  const work = await tempFolder('ui-', inject('e2eWork'));
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

  it('signs out, after which the pages ask to sign in again', async () => {
    await page.click('#signout');
    await page.waitForSelector('form.signin');
    expect(await context.cookies()).toEqual([]);
    await page.goto(`${registry.url}/ui/#/r/team/web`);
    await expect.poll(() => page.textContent('main')).toMatch(/Sign in/);
  });
});
