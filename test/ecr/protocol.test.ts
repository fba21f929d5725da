// The ECR API's protocol with the real JavaScript SDK and by hand: the JSON 1.1 envelope,
// signature verification (wrong secret, unknown key, stale clock, tampered body), unknown
// operations, bad bodies, and the access rules deciding per operation.
import { CreateRepositoryCommand, DescribeRepositoriesCommand, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeSha256 } from '../../src/auth/sigv4.js';
import { ACCOUNT, KEYS, failure, startEcrRegistry, type EcrTestRegistry } from './sdk-support.js';

let registry: EcrTestRegistry;

beforeAll(async () => {
  registry = await startEcrRegistry();
});
afterAll(async () => {
  await registry?.destroy();
});

const TARGET = 'AmazonEC2ContainerRegistry_V20150921.';

describe('signature verification with the SDK', () => {
  it('accepts a request signed by a configured key pair', async () => {
    const out = await registry.client('admin').send(new DescribeRepositoriesCommand({}));
    expect(out.repositories).toEqual([]);
    expect(out.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refuses a wrong secret with InvalidSignatureException', async () => {
    const f = await failure(registry.client('admin', { secret: 'not-the-secret-0123456789' }).send(new DescribeRepositoriesCommand({})));
    expect(f.name).toBe('InvalidSignatureException');
    expect(f.status).toBe(400);
    expect(f.message).toContain('does not match the signature you provided');
  });

  it('refuses an unknown access key with UnrecognizedClientException', async () => {
    const f = await failure(registry.client('admin', { accessKeyId: 'AKIAOCIREGNOSUCHKEY1' }).send(new DescribeRepositoriesCommand({})));
    expect(f.name).toBe('UnrecognizedClientException');
    expect(f.status).toBe(400);
  });

  it('refuses a request signed more than 15 minutes away from the server clock', async () => {
    const f = await failure(registry.client('admin', { clockOffsetMs: -20 * 60_000 }).send(new DescribeRepositoriesCommand({})));
    expect(f.name).toBe('InvalidSignatureException');
    expect(f.message).toMatch(/Signature expired/);
  });

  it('refuses a body changed after signing', async () => {
    const client = registry.client('admin');
    client.middlewareStack.add(
      (next) => async (args) => {
        const request = (args as { request: { body?: unknown } }).request;
        request.body = JSON.stringify({ repositoryName: 'team/evil00' }); // as long as the signed body
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low', name: 'tamper' },
    );
    const f = await failure(client.send(new CreateRepositoryCommand({ repositoryName: 'team/signed' })));
    expect(f.name).toBe('InvalidSignatureException');
    const list = await registry.client('admin').send(new DescribeRepositoriesCommand({}));
    expect(list.repositories).toEqual([]);
  });

  it('refuses an unsigned request', async () => {
    const res = await fetch(registry.url, {
      method: 'POST',
      headers: { 'x-amz-target': `${TARGET}DescribeRepositories`, 'content-type': 'application/x-amz-json-1.1' },
      body: '{}',
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { __type: string }).__type).toBe('MissingAuthenticationTokenException');
  });
});

describe('the JSON 1.1 envelope', () => {
  /** A signed raw request: the SDK's signer over our own target and body. */
  async function raw(target: string, body: string, contentType = 'application/x-amz-json-1.1') {
    const { SignatureV4 } = await import('@smithy/signature-v4');
    const url = new URL(registry.url);
    const signer = new SignatureV4({ credentials: KEYS.admin, region: 'us-east-1', service: 'ecr', sha256: NodeSha256 });
    const signed = await signer.sign({
      method: 'POST',
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: '/',
      query: {},
      headers: { host: url.host, 'x-amz-target': target, 'content-type': contentType },
      body,
    });
    const res = await fetch(registry.url, { method: 'POST', headers: signed.headers as Record<string, string>, body });
    return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
  }

  it('answers an operation this registry does not implement with UnknownOperationException', async () => {
    const res = await raw(`${TARGET}StartImageScan`, '{}');
    expect(res.status).toBe(400);
    expect(res.body.__type).toBe('UnknownOperationException');
    expect(res.headers.get('x-amzn-errortype')).toBe('UnknownOperationException');
    expect(res.headers.get('content-type')).toBe('application/x-amz-json-1.1');
  });

  it('answers a malformed body with SerializationException, and a body that is not an object too', async () => {
    expect((await raw(`${TARGET}DescribeRepositories`, '{not json')).body.__type).toBe('SerializationException');
    expect((await raw(`${TARGET}DescribeRepositories`, '[1]')).body.__type).toBe('SerializationException');
  });

  it('answers a member of the wrong type with SerializationException, not a crash', async () => {
    const res = await raw(`${TARGET}DescribeRepositories`, JSON.stringify({ maxResults: 'ten' }));
    expect(res.status).toBe(400);
    expect(res.body.__type).toBe('SerializationException');
  });

  it('answers an out-of-range value as the operation\'s model has it: InvalidParameterException or ValidationException', async () => {
    // DescribeRepositories is of the older operations, whose model lists no ValidationException.
    const older = await raw(`${TARGET}DescribeRepositories`, JSON.stringify({ maxResults: 5000 }));
    expect(older.status).toBe(400);
    expect(older.body).toEqual({
      __type: 'InvalidParameterException',
      message: "Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value less than or equal to 1000'",
    });
    const newer = await raw(`${TARGET}DescribeRepositoryCreationTemplates`, JSON.stringify({ maxResults: 5000 }));
    expect(newer.status).toBe(400);
    expect(newer.body).toEqual({
      __type: 'ValidationException',
      message: "1 validation error detected: Value 5000 at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 1000",
    });
  });

  it('refuses another content type', async () => {
    const res = await raw(`${TARGET}DescribeRepositories`, '{}', 'text/plain');
    expect(res.body.__type).toBe('SerializationException');
  });

  it('answers a body larger than the operation accepts with 413, before reading it all', async () => {
    const res = await raw(`${TARGET}DescribeRepositories`, JSON.stringify({ repositoryNames: ['x'.repeat(2 * 1024 * 1024)] }));
    expect(res.status).toBe(413);
  });
});

describe('bodies are read only for a signed head, and within a budget', () => {
  /** Sends the head and the first KiB of a body declared `length` long; resolves with the answer's status and body. */
  function partial(headers: Record<string, string>, length: number): { answer: Promise<{ status: number; body: string }>; abort(): void } {
    const req = httpRequest(registry.url, { method: 'POST', headers: { ...headers, 'content-length': String(length) } });
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
    });
    answer.catch(() => undefined); // an aborted request's answer never comes: not an error here
    req.write(Buffer.alloc(1024, 0x20));
    return { answer, abort: () => req.destroy() };
  }

  /** A signed head; with `targetSigned` false, X-Amz-Target and Content-Type are added after signing. */
  async function signedHead(target: string, targetSigned = true): Promise<Record<string, string>> {
    const { SignatureV4 } = await import('@smithy/signature-v4');
    const url = new URL(registry.url);
    const signer = new SignatureV4({ credentials: KEYS.admin, region: 'us-east-1', service: 'ecr', sha256: NodeSha256 });
    const operation = { 'x-amz-target': `${TARGET}${target}`, 'content-type': 'application/x-amz-json-1.1' };
    const headers: Record<string, string> = { host: url.host, ...(targetSigned ? operation : {}) };
    const signed = await signer.sign({ method: 'POST', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: '/', query: {}, headers, body: '{}' });
    return { ...(signed.headers as Record<string, string>), ...operation };
  }

  it('refuses an unsigned 27 MiB UploadLayerPart from its head, without waiting for the body', async () => {
    const sent = partial({ 'x-amz-target': `${TARGET}UploadLayerPart`, 'content-type': 'application/x-amz-json-1.1' }, 27 * 1024 * 1024);
    try {
      const { status, body } = await sent.answer;
      expect(status).toBe(403);
      expect(JSON.parse(body).__type).toBe('MissingAuthenticationTokenException');
    } finally {
      sent.abort();
    }
  });

  it('refuses a signature that does not cover X-Amz-Target (it could be replayed as another operation)', async () => {
    const headers = await signedHead('DescribeRepositories', false);
    expect(headers.authorization).toMatch(/SignedHeaders=host;[a-z0-9;-]*x-amz-date,/);
    expect(headers.authorization).not.toContain('x-amz-target');
    const res = await fetch(registry.url, { method: 'POST', headers, body: '{}' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ __type: 'InvalidSignatureException', message: expect.stringContaining('x-amz-target') });
  });

  it('answers ThrottlingException once the bodies being received fill the budget, and frees it when they end', async () => {
    const headers = await signedHead('UploadLayerPart');
    const size = 27 * 1024 * 1024;
    const held = [partial(headers, size), partial(headers, size), partial(headers, size), partial(headers, size)];
    try {
      // The four are being read (their heads passed): a fifth does not fit.
      await new Promise((r) => setTimeout(r, 200));
      const fifth = partial(headers, size);
      const { status, body } = await fifth.answer;
      fifth.abort();
      expect(status).toBe(400);
      expect(JSON.parse(body).__type).toBe('ThrottlingException');
    } finally {
      for (const h of held) h.abort();
    }
    await new Promise((r) => setTimeout(r, 200));
    const after = await registry.client('admin').send(new DescribeRepositoriesCommand({}));
    expect(after.repositories).toBeDefined();
    const again = partial(headers, size);
    const raced = await Promise.race([again.answer, new Promise((r) => setTimeout(() => r('still reading'), 300))]);
    again.abort();
    expect(raced).toBe('still reading'); // room again: it is being read, not refused
  });
});

describe('the access rules per operation', () => {
  it('lets a reader describe but not create, with AccessDeniedException naming the user and the action', async () => {
    const f = await failure(registry.client('reader').send(new CreateRepositoryCommand({ repositoryName: 'team/x' })));
    expect(f.name).toBe('AccessDeniedException');
    expect(f.message).toBe(
      `User: arn:aws:iam::${ACCOUNT}:user/reader is not authorized to perform: ecr:CreateRepository on resource: arn:aws:ecr:us-east-1:${ACCOUNT}:repository/team/x because no identity-based policy allows the ecr:CreateRepository action`,
    );
    await registry.client('dev').send(new CreateRepositoryCommand({ repositoryName: 'team/x' }));
    const seen = await registry.client('reader').send(new DescribeRepositoriesCommand({}));
    expect(seen.repositories?.map((r) => r.repositoryName)).toEqual(['team/x']);
  });

  it('keeps a key to the repositories its user may manage', async () => {
    const f = await failure(registry.client('dev').send(new CreateRepositoryCommand({ repositoryName: 'other/x' })));
    expect(f.name).toBe('AccessDeniedException');
  });

  it('gives any key a login password for user AWS that /v2/ accepts, valid 12 hours', async () => {
    const before = Date.now();
    const out = await registry.client('reader').send(new GetAuthorizationTokenCommand({}));
    const data = out.authorizationData![0]!;
    expect(data.proxyEndpoint).toBe(registry.url);
    expect(data.expiresAt!.getTime()).toBeGreaterThanOrEqual(before + 12 * 3600_000 - 5_000);
    expect(data.expiresAt!.getTime()).toBeLessThanOrEqual(Date.now() + 12 * 3600_000 + 5_000);
    const [user, password] = Buffer.from(data.authorizationToken!, 'base64').toString('utf8').split(':');
    expect(user).toBe('AWS');
    const pull = await fetch(`${registry.url}/v2/team/x/tags/list`, { headers: { authorization: `Basic ${Buffer.from(`AWS:${password}`).toString('base64')}` } });
    expect(pull.status).not.toBe(401);
    const push = await fetch(`${registry.url}/v2/team/x/blobs/uploads/`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`AWS:${password}`).toString('base64')}` } });
    expect(push.status).toBe(403); // reader may pull only
  });
});
