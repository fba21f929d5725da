// Credentials are the registry's, not a node's: a token signed by one node (all share the key file)
// is accepted by the others, and an access key made with `ocireg keys create` against the shared
// database works through every node until it is revoked, then through none.
import bcrypt from 'bcrypt';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/built-server.js';
import { testBytes } from '../support/socket.js';
import { digestOf, itLeavesNoErrors, pushBlob, request, useCluster } from './support.js';

const USER = 'alice';
const PASSWORD = 'cluster-secret-password';
const SERVICE = 'ocireg-cluster';
const REPO = 'cluster/auth';

const cluster = useCluster(async (dir) => {
  const htpasswd = join(dir, 'htpasswd');
  await writeFile(htpasswd, `${USER}:${await bcrypt.hash(PASSWORD, 5)}\n`);
  return {
    nodes: 3,
    config: {
      auth: {
        htpasswd: { realm: SERVICE, path: htpasswd },
        // No key path: startCluster makes one key file and gives it to every node.
        tokenserver: { enabled: true, issuer: SERVICE, service: SERVICE, expiration: '5m' },
      },
      access: { repositories: { '**': { users: { [USER]: ['pull', 'push', 'delete'] } } } },
    },
  };
});

const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
/** Let in: 200, or 404 if the repository does not exist yet (the other case of this file makes it). */
const allowed = (status: number) => status === 200 || status === 404;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function tokenFrom(base: string, credentials: Record<string, string>, scope = `repository:${REPO}:pull,push`): Promise<string> {
  const res = await request(base, 'GET', `/auth/token?service=${SERVICE}&scope=${encodeURIComponent(scope)}`, { headers: credentials });
  expect(res.status, res.body.toString()).toBe(200);
  return (JSON.parse(res.body.toString()) as { token: string }).token;
}

describe('tokens and access keys across nodes', () => {
  it('accepts on every node a token issued by one', async () => {
    const nodes = cluster().nodes;
    for (const node of nodes) expect((await request(node.url, 'GET', '/v2/')).status).toBe(401);
    const jwks = await Promise.all(nodes.map(async (n) => (await request(n.url, 'GET', '/auth/jwks.json')).body.toString()));
    expect(new Set(jwks).size).toBe(1);

    const token = await tokenFrom(nodes[0]!.url, basic(USER, PASSWORD));
    const blob = testBytes(300 * 1024, 600);
    // Pushed in chunks through the balancer with the one token: every node checks it.
    await pushBlob(cluster().url, REPO, blob, 64 * 1024, bearer(token));
    for (const node of nodes) {
      const res = await request(node.url, 'HEAD', `/v2/${REPO}/blobs/${digestOf(blob)}`, { headers: bearer(token) });
      expect(res.status, node.name).toBe(200);
    }
  });

  it('takes an access key made with `ocireg keys create` on every node, and on none once revoked', async () => {
    const c = cluster();
    const args = ['--config', c.nodes[0]!.configPath];
    const created = await runCli(c.cli, ['keys', 'create', '--user', USER, '--scope', 'repository:cluster/*:pull,push', ...args], c.env);
    expect(created.code, created.stderr).toBe(0);
    const secret = created.stdout.trim();
    const id = /^ocik_([0-9a-f]{16})_/.exec(secret)?.[1];
    expect(id, secret).toBeDefined();

    const tags = `/v2/${REPO}/tags/list`;
    const tokens: string[] = [];
    for (const node of c.nodes) {
      expect(allowed((await request(node.url, 'GET', tags, { headers: basic(USER, secret) })).status), node.name).toBe(true);
      tokens.push(await tokenFrom(node.url, basic(USER, secret)));
    }
    // A token made with the key on one node works on the next one.
    for (const [i, token] of tokens.entries()) {
      const next = c.nodes[(i + 1) % c.nodes.length]!;
      expect(allowed((await request(next.url, 'GET', tags, { headers: bearer(token) })).status), next.name).toBe(true);
    }

    const revoked = await runCli(c.cli, ['keys', 'revoke', id!, ...args], c.env);
    expect(revoked.code, revoked.stderr).toBe(0);
    // At once, on every node: the key and the tokens obtained with it.
    for (const node of c.nodes) {
      expect((await request(node.url, 'GET', tags, { headers: basic(USER, secret) })).status, `${node.name}, the key`).toBe(401);
      for (const token of tokens) expect((await request(node.url, 'GET', tags, { headers: bearer(token) })).status, `${node.name}, a token`).toBe(401);
      const refused = await request(node.url, 'GET', `/auth/token?service=${SERVICE}&scope=repository:${REPO}:pull`, { headers: basic(USER, secret) });
      expect(refused.status, node.name).toBe(401);
    }
    // The user's own password still works everywhere.
    for (const node of c.nodes) expect(allowed((await request(node.url, 'GET', tags, { headers: basic(USER, PASSWORD) })).status)).toBe(true);
  });

  itLeavesNoErrors(cluster);
});
