// DeleteRepository while a push is in flight: a monolithic upload that began before the delete
// does not bring the repository back when it ends, with its settings lost, and the repository
// stays gone for ECR and for /v2/.
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { CreateRepositoryCommand, DeleteRepositoryCommand, DescribeRepositoriesCommand, PutImageTagMutabilityCommand } from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsLogin } from './sdk-fixtures.js';
import { failure, startEcrRegistry, type EcrTestRegistry } from './sdk-support.js';

let registry: EcrTestRegistry;

beforeAll(async () => {
  registry = await startEcrRegistry();
});
afterAll(async () => {
  await registry?.destroy();
});

describe('DeleteRepository against a push in flight', () => {
  it('refuses the upload as it ends, and the repository stays deleted', async () => {
    const client = registry.client('admin');
    const repo = 'team/racing';
    await client.send(new CreateRepositoryCommand({ repositoryName: repo }));
    await client.send(new PutImageTagMutabilityCommand({ repositoryName: repo, imageTagMutability: 'IMMUTABLE' }));
    const auth = await awsLogin(registry);
    const bytes = Buffer.alloc(256 * 1024, 'r');
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

    // A monolithic upload: its first half now, the rest once the repository is deleted.
    const req = httpRequest(`${registry.url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
    });
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
    });
    req.write(bytes.subarray(0, bytes.length / 2));
    await new Promise((r) => setTimeout(r, 100));

    await client.send(new DeleteRepositoryCommand({ repositoryName: repo, force: true }));
    req.end(bytes.subarray(bytes.length / 2));
    const { status, body } = await answer;
    expect(status).toBe(404);
    expect(JSON.parse(body).errors[0].code).toBe('NAME_UNKNOWN');

    const f = await failure(client.send(new DescribeRepositoriesCommand({ repositoryNames: [repo] })));
    expect(f.name).toBe('RepositoryNotFoundException');
    const tags = await fetch(`${registry.url}/v2/${repo}/tags/list`, { headers: { authorization: auth } });
    expect(tags.status).toBe(404);
    // Created again, it has ECR's defaults, not leftovers.
    const again = await client.send(new CreateRepositoryCommand({ repositoryName: repo }));
    expect(again.repository?.imageTagMutability).toBe('MUTABLE');
  });
});
