// A manifest GET on /v2/ is a pull (lastRecordedPullTime); a HEAD is not.
import { afterEach, beforeEach, expect, it } from 'vitest';
import { makeImage, putManifest, startRegistry, type TestRegistry } from '../helpers.js';

const REPO = 'team/app';
let reg: TestRegistry;
beforeEach(async () => {
  reg = await startRegistry();
});
afterEach(async () => {
  await reg.destroy();
});

it('records a pull on GET of a manifest, by tag or digest, and none on HEAD', async () => {
  const pulled = await makeImage(reg.app, REPO, { layer: 'pulled' });
  const looked = await makeImage(reg.app, REPO, { layer: 'looked' });
  expect((await putManifest(reg.app, REPO, 'pulled', pulled)).statusCode).toBe(201);
  expect((await putManifest(reg.app, REPO, 'looked', looked)).statusCode).toBe(201);
  const pulls = reg.app.registry.pulls;
  expect(await pulls.lastPulled(REPO, pulled.digest)).toBeUndefined();

  const before = Date.now();
  const get = await reg.app.inject({ method: 'GET', url: `/v2/${REPO}/manifests/pulled` });
  expect(get.statusCode).toBe(200);
  const head = await reg.app.inject({ method: 'HEAD', url: `/v2/${REPO}/manifests/looked` });
  expect(head.statusCode).toBe(200);
  expect(await pulls.lastPulled(REPO, pulled.digest)).toBeGreaterThanOrEqual(before);
  expect(await pulls.lastPulled(REPO, looked.digest)).toBeUndefined();

  expect((await reg.app.inject({ method: 'GET', url: `/v2/${REPO}/manifests/${looked.digest}` })).statusCode).toBe(200);
  expect(await pulls.lastPulled(REPO, looked.digest)).toBeGreaterThanOrEqual(before);
  // A manifest that is not there is no pull.
  expect((await reg.app.inject({ method: 'GET', url: `/v2/${REPO}/manifests/nope` })).statusCode).toBe(404);
});
