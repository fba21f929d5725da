// Shared pieces of the auth HTTP tests: an htpasswd file, credentials, authenticated pushes.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcrypt';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, digestOf, manifestOf, type BuiltManifest } from '../helpers.js';

export const PASSWORDS: Record<string, string> = {
  alice: 'alice-pw',
  bob: 'bob-pw',
  carol: 'carol-pw',
  root: 'root-pw',
  ci: 'ci-pw',
};

/** Writes an htpasswd file (bcrypt, cost 4, `$2y$` as `htpasswd -B` writes) for PASSWORDS. */
export async function writeHtpasswd(dir: string, users: Record<string, string> = PASSWORDS): Promise<string> {
  const lines = await Promise.all(
    Object.entries(users).map(async ([user, pw]) => `${user}:${(await bcrypt.hash(pw, 4)).replace(/^\$2b\$/, '$2y$')}`),
  );
  const path = join(dir, 'htpasswd');
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

export function basic(user: string, password = PASSWORDS[user] ?? ''): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export function bearer(token: string): string {
  return `Bearer ${token}`;
}

export type Authorization = string | undefined;

export function call(
  app: FastifyInstance,
  authorization: Authorization,
  options: InjectOptions & { method: string; url: string },
): Promise<LightMyRequestResponse> {
  const headers = { ...(options.headers ?? {}), ...(authorization ? { authorization } : {}) };
  return app.inject({ ...options, headers } as InjectOptions) as Promise<LightMyRequestResponse>;
}

export async function pushBlobAs(app: FastifyInstance, authorization: Authorization, repo: string, data: Buffer | string) {
  const digest = digestOf(data);
  const res = await call(app, authorization, {
    method: 'POST',
    url: `/v2/${repo}/blobs/uploads/?digest=${digest}`,
    headers: { 'content-type': 'application/octet-stream' },
    payload: Buffer.from(data),
  });
  return { res, digest };
}

/** Pushes a one-layer image and tags it; returns the last response (201 when it all went through). */
export async function pushImageAs(
  app: FastifyInstance,
  authorization: Authorization,
  repo: string,
  tag = 'v1',
  layer = repo,
): Promise<{ res: LightMyRequestResponse; manifest?: BuiltManifest }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', layer }));
  const body = Buffer.from(`layer:${layer}`);
  const c = await pushBlobAs(app, authorization, repo, config);
  if (c.res.statusCode !== 201) return { res: c.res };
  const l = await pushBlobAs(app, authorization, repo, body);
  if (l.res.statusCode !== 201) return { res: l.res };
  const manifest = manifestOf(
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: c.digest, size: config.length },
      layers: [{ mediaType: OCI_LAYER, digest: l.digest, size: body.length }],
    },
    OCI_MANIFEST,
  );
  const res = await call(app, authorization, {
    method: 'PUT',
    url: `/v2/${repo}/manifests/${tag}`,
    headers: { 'content-type': OCI_MANIFEST },
    payload: manifest.body,
  });
  return { res, manifest };
}

export function errorOf(res: LightMyRequestResponse): string | undefined {
  return (res.json() as { errors?: Array<{ code: string }> }).errors?.[0]?.code;
}

/** The parts of a `WWW-Authenticate` challenge: scheme and parameters. */
export function parseChallenge(value: string | undefined): { scheme: string; params: Record<string, string> } {
  const m = /^(\w+) (.*)$/.exec(value ?? '');
  if (!m) throw new Error(`no challenge in ${JSON.stringify(value)}`);
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) params[p[1]!] = p[2]!.replace(/\\(.)/g, '$1');
  return { scheme: m[1]!, params };
}
