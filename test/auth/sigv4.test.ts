// SigV4 verification against requests signed by @smithy/signature-v4 with the SDK's own hash
// (as the AWS SDK for JavaScript signs them): what verifies, and each failure's type and status.
import { Hash } from '@smithy/core/serde';
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { EcrCredentials } from '../../src/auth/ecr-credentials.js';
import { MAX_AUTHORIZATION_LENGTH, SigV4Verifier, type SignedRequest, type SigV4Result } from '../../src/auth/sigv4.js';
import type { EcrCredential } from '../../src/config/config.js';

const CI: EcrCredential = { accessKeyId: 'AKIAEXAMPLECI00001', secretAccessKey: 'ci-secret/ci+secret-ci-secret', user: 'ci' };
const NOW = Date.UTC(2025, 0, 2, 3, 4, 5);
const BODY = Buffer.from(JSON.stringify({ repositoryName: 'app/web' }));
const MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

interface SignOptions {
  secret?: string;
  accessKeyId?: string;
  region?: string;
  service?: string;
  date?: number;
  /** Let the signer add and sign X-Amz-Content-SHA256 (the SDK's default). */
  applyChecksum?: boolean;
  headers?: Record<string, string>;
  query?: Record<string, string | string[]>;
  rawQuery?: string;
  path?: string;
  body?: Buffer;
  signableHeaders?: Set<string>;
  unsignableHeaders?: Set<string>;
}

/** A request as the SDK sends it to the ECR API, signed; returned as the server receives it. */
async function signed(options: SignOptions = {}): Promise<SignedRequest & { headers: Record<string, string | string[]> }> {
  const body = options.body ?? BODY;
  const signer = new SignatureV4({
    credentials: { accessKeyId: options.accessKeyId ?? CI.accessKeyId, secretAccessKey: options.secret ?? CI.secretAccessKey },
    region: options.region ?? 'us-east-1',
    service: options.service ?? 'ecr',
    sha256: Hash.bind(null, 'sha256'),
    applyChecksum: options.applyChecksum ?? true,
  });
  const request = {
    method: 'POST',
    protocol: 'http:',
    hostname: 'localhost',
    port: 5000,
    path: options.path ?? '/',
    query: options.query ?? {},
    headers: {
      host: 'localhost:5000',
      'content-type': 'application/x-amz-json-1.1',
      'content-length': String(body.length),
      'x-amz-target': 'AmazonEC2ContainerRegistry_V20150921.CreateRepository',
      'x-amz-user-agent': 'aws-sdk-js/3.0.0',
      'user-agent': 'aws-sdk-js/3.0.0 ua/2.1 os/linux',
      'amz-sdk-invocation-id': '5b1a2b3c-0000-4000-8000-000000000000',
      ...options.headers,
    },
    body,
  };
  const out = await signer.sign(request, {
    signingDate: new Date(options.date ?? NOW),
    ...(options.signableHeaders ? { signableHeaders: options.signableHeaders } : {}),
    ...(options.unsignableHeaders ? { unsignableHeaders: options.unsignableHeaders } : {}),
  });
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(out.headers)) headers[name.toLowerCase()] = value;
  return { method: 'POST', path: request.path, query: options.rawQuery ?? '', headers, body };
}

function verifier(now = NOW, credentials: readonly EcrCredential[] = [CI]): SigV4Verifier {
  return new SigV4Verifier({ region: 'us-east-1', service: 'ecr', credentials: new EcrCredentials(credentials), now: () => now });
}

function failure(result: SigV4Result): { type: string; status: number; message: string } {
  if (result.ok) throw new Error('expected the signature to be refused');
  return { type: result.type, status: result.status, message: result.message };
}

const invalidSignature = (message: string) => ({ type: 'InvalidSignatureException', status: 400, message });

describe('SigV4Verifier: what verifies', () => {
  it('accepts a request signed as the SDK signs it (host with its port, X-Amz-Content-SHA256 signed)', async () => {
    const request = await signed();
    expect(request.headers['x-amz-content-sha256']).toBeDefined();
    expect(request.headers.authorization).toContain('SignedHeaders=amz-sdk-invocation-id;content-length;content-type;host;');
    expect(await verifier().verify(request)).toEqual({ ok: true, credential: CI });
  });

  it('accepts a request without X-Amz-Content-SHA256, hashing the body itself', async () => {
    const request = await signed({ applyChecksum: false });
    expect(request.headers['x-amz-content-sha256']).toBeUndefined();
    expect(await verifier().verify(request)).toEqual({ ok: true, credential: CI });
  });

  it('ignores an unsigned X-Amz-Content-SHA256 for the hash, whatever it says', async () => {
    const request = await signed({ applyChecksum: false });
    request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
    expect((await verifier().verify(request)).ok).toBe(true);
  });

  it('signs exactly the headers listed: a header the SDK never signs (user-agent) when a client lists it', async () => {
    const request = await signed({ signableHeaders: new Set(['user-agent']) });
    expect(request.headers.authorization).toMatch(/SignedHeaders=[^,]*;user-agent;/);
    expect((await verifier().verify(request)).ok).toBe(true);
  });

  it('ignores headers added after signing, and accepts an empty body', async () => {
    const request = await signed({ body: Buffer.alloc(0) });
    request.headers['x-forwarded-for'] = '10.0.0.1';
    expect((await verifier().verify(request)).ok).toBe(true);
  });

  it('takes the path and the query as received, repeated names included', async () => {
    const request = await signed({
      path: '/some/path',
      query: { b: 'x y', a: ['2', '1'], empty: '' },
      rawQuery: 'b=x%20y&a=2&a=1&empty=',
    });
    expect((await verifier().verify(request)).ok).toBe(true);
    expect(failure(await verifier().verify({ ...request, query: 'b=x%20y&a=2' })).message).toBe(MISMATCH);
    expect(failure(await verifier().verify({ ...request, path: '/some/other' })).message).toBe(MISMATCH);
    expect(failure(await verifier().verify({ ...request, query: 'b=%zz' })).type).toBe('IncompleteSignatureException');
  });

  it('joins a header received several times with commas, as AWS does', async () => {
    const request = await signed({ headers: { 'x-amz-meta-list': 'a,b' } });
    request.headers['x-amz-meta-list'] = ['a', 'b'];
    expect((await verifier().verify(request)).ok).toBe(true);
  });

  it('accepts dates within 15 minutes either way', async () => {
    const request = await signed();
    expect((await verifier(NOW + 15 * 60_000).verify(request)).ok).toBe(true);
    expect((await verifier(NOW - 15 * 60_000).verify(request)).ok).toBe(true);
  });

  it('answers the credential of the key that signed, among several', async () => {
    const other = { accessKeyId: 'AKIAEXAMPLEOPS0001', secretAccessKey: 'ops-secret-ops-secret', user: 'ops' };
    const request = await signed({ accessKeyId: other.accessKeyId, secret: other.secretAccessKey });
    expect(await verifier(NOW, [CI, other]).verify(request)).toEqual({ ok: true, credential: other });
  });
});

describe('SigV4Verifier: what is refused, as AWS answers it', () => {
  it('a missing Authorization header: MissingAuthenticationTokenException, 403', async () => {
    const request = await signed();
    delete request.headers.authorization;
    expect(failure(await verifier().verify(request))).toEqual({
      type: 'MissingAuthenticationTokenException',
      status: 403,
      message: 'Missing Authentication Token',
    });
  });

  it('a wrong secret: InvalidSignatureException with AWS message', async () => {
    const request = await signed({ secret: 'not-the-secret-at-all-0000' });
    expect(failure(await verifier().verify(request))).toEqual(invalidSignature(MISMATCH));
  });

  it('an unknown key: UnrecognizedClientException, 400', async () => {
    const request = await signed({ accessKeyId: 'AKIAUNKNOWN0000000' });
    expect(failure(await verifier().verify(request))).toEqual({
      type: 'UnrecognizedClientException',
      status: 400,
      message: 'The security token included in the request is invalid.',
    });
  });

  it('a tampered body, with and without a signed X-Amz-Content-SHA256', async () => {
    for (const applyChecksum of [true, false]) {
      const request = await signed({ applyChecksum });
      const tampered = { ...request, body: Buffer.from(JSON.stringify({ repositoryName: 'app/evil' })) };
      expect(failure(await verifier().verify(tampered)), String(applyChecksum)).toEqual(invalidSignature(MISMATCH));
    }
  });

  it('a signed X-Amz-Content-SHA256 that is not the body hash (UNSIGNED-PAYLOAD included)', async () => {
    const request = await signed({ headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } });
    expect(request.headers.authorization).toContain('x-amz-content-sha256');
    expect(failure(await verifier().verify(request))).toEqual(invalidSignature(MISMATCH));
  });

  it('a tampered signed header', async () => {
    const request = await signed();
    request.headers['x-amz-target'] = 'AmazonEC2ContainerRegistry_V20150921.DeleteRepository';
    expect(failure(await verifier().verify(request))).toEqual(invalidSignature(MISMATCH));
    const other = await signed();
    other.headers.host = 'evil.example:5000';
    expect(failure(await verifier().verify(other))).toEqual(invalidSignature(MISMATCH));
  });

  it('a listed header that is not there, or names an object property, as a mismatch (never a crash)', async () => {
    for (const extra of ['x-amz-missing', 'constructor', '__proto__', 'tostring']) {
      const request = await signed();
      request.headers.authorization = (request.headers.authorization as string).replace('SignedHeaders=', `SignedHeaders=${extra};`);
      expect(failure(await verifier().verify(request)), extra).toEqual(invalidSignature(MISMATCH));
    }
    // The list out of order: not what the signer signed.
    const request = await signed();
    const list = /SignedHeaders=([^,]+)/.exec(request.headers.authorization as string)![1]!;
    const reversed = list.split(';').reverse().join(';');
    request.headers.authorization = (request.headers.authorization as string).replace(list, reversed);
    expect(failure(await verifier().verify(request))).toEqual(invalidSignature(MISMATCH));
  });

  it('an unsigned host', async () => {
    const request = await signed({ unsignableHeaders: new Set(['host']) });
    expect(request.headers.authorization).not.toMatch(/[=;]host[;,]/);
    expect(failure(await verifier().verify(request))).toEqual(
      invalidSignature("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."),
    );
  });

  it('an unsigned X-Amz-Date', async () => {
    const request = await signed();
    request.headers.authorization = (request.headers.authorization as string).replace(';x-amz-date', '');
    expect(failure(await verifier().verify(request))).toEqual(invalidSignature("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization."));
  });

  it('a stale date, more than 15 minutes old', async () => {
    const request = await signed();
    expect(failure(await verifier(NOW + 15 * 60_000 + 1000).verify(request))).toEqual(
      invalidSignature('Signature expired: 20250102T030405Z is now earlier than 20250102T030406Z (20250102T031906Z - 15 min.)'),
    );
  });

  it('a date more than 15 minutes ahead', async () => {
    const request = await signed();
    expect(failure(await verifier(NOW - 15 * 60_000 - 1000).verify(request))).toEqual(
      invalidSignature('Signature not yet current: 20250102T030405Z is still later than 20250102T030404Z (20250102T024904Z + 15 min.)'),
    );
  });

  it('a wrong region and a wrong service in the scope', async () => {
    expect(failure(await verifier().verify(await signed({ region: 'eu-west-1' })))).toEqual(
      invalidSignature("Credential should be scoped to a valid region, not 'eu-west-1'. "),
    );
    expect(failure(await verifier().verify(await signed({ service: 'ecs' })))).toEqual(
      invalidSignature("Credential should be scoped to correct service: 'ecr'. "),
    );
  });

  it('a scope date that is not X-Amz-Date\'s day', async () => {
    const request = await signed();
    request.headers.authorization = (request.headers.authorization as string).replace('/20250102/', '/20250101/');
    expect(failure(await verifier().verify(request))).toEqual(
      invalidSignature(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20250101' != '20250102', from '20250102T030405Z'.",
      ),
    );
  });

  it('a missing or malformed X-Amz-Date: IncompleteSignatureException', async () => {
    for (const date of [undefined, '2025-01-02T03:04:05Z', '20250230T030405Z', '20250102T030405', '']) {
      const request = await signed();
      if (date === undefined) delete request.headers['x-amz-date'];
      else request.headers['x-amz-date'] = date;
      expect(failure(await verifier().verify(request)), String(date)).toEqual({
        type: 'IncompleteSignatureException',
        status: 400,
        message: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
      });
    }
  });

  it('a terminator other than aws4_request', async () => {
    const request = await signed();
    request.headers.authorization = (request.headers.authorization as string).replace('/aws4_request', '/aws5_request');
    expect(failure(await verifier().verify(request))).toMatchObject({ type: 'InvalidSignatureException', status: 400 });
  });

  it('malformed Authorization headers: IncompleteSignatureException, 400, never echoing the header', async () => {
    const good = (await signed()).headers.authorization as string;
    const credential = /Credential=([^,]+)/.exec(good)![1]!;
    const signature = /Signature=([0-9a-f]+)/.exec(good)![1]!;
    const signedHeaders = /SignedHeaders=([^,]+)/.exec(good)![1]!;
    const cases = [
      'Basic c2VjcmV0LXBhc3N3b3Jk',
      'AWS4-HMAC-SHA256',
      'AWS4-HMAC-SHA256 ',
      `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=${signedHeaders}`,
      `AWS4-HMAC-SHA256 Credential=${credential}, Signature=${signature}`,
      `AWS4-HMAC-SHA256 SignedHeaders=${signedHeaders}, Signature=${signature}`,
      `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=${signedHeaders}, Signature=${signature.toUpperCase()}`,
      `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=${signedHeaders}, Signature=${signature.slice(1)}`,
      `AWS4-HMAC-SHA256 Credential=${credential.split('/').slice(0, 4).join('/')}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
      `AWS4-HMAC-SHA256 Credential=${credential}/x, SignedHeaders=${signedHeaders}, Signature=${signature}`,
      `AWS4-HMAC-SHA256 Credential=${credential}, Credential=${credential}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
      `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=${signedHeaders}, Signature=${signature}, Extra=1`,
      `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=Host;X-Amz-Date, Signature=${signature}`,
      `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=host;host;x-amz-date, Signature=${signature}`,
      `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=host;;x-amz-date, Signature=${signature}`,
      `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=${Array.from({ length: 65 }, (_, i) => `h${i}`).join(';')}, Signature=${signature}`,
      `AWS4-HMAC-SHA256 Credential=${credential.replace('20250102', '2025-1-2')}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
      `AWS4-HMAC-SHA256 Credential=${credential.replace('us-east-1', 'US_EAST')}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
      `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=${signedHeaders}, Signature=${signature}${' '.repeat(MAX_AUTHORIZATION_LENGTH)}`,
      `AWS4-HMAC-SHA1 Credential=${credential}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    ];
    for (const authorization of cases) {
      const request = await signed();
      request.headers.authorization = authorization;
      const result = failure(await verifier().verify(request));
      expect(result, authorization.slice(0, 120)).toMatchObject({ type: 'IncompleteSignatureException', status: 400 });
      expect(result.message).not.toContain('c2VjcmV0');
      expect(result.message).not.toContain(signature.slice(1));
    }
  });

  it('accepts the components in another order and with spaces around commas', async () => {
    const request = await signed();
    const good = request.headers.authorization as string;
    const [, rest] = /^AWS4-HMAC-SHA256 (.*)$/.exec(good)!;
    const parts = rest!.split(', ');
    request.headers.authorization = `AWS4-HMAC-SHA256 ${[parts[2], parts[0], parts[1]].join(' ,  ')}`;
    expect((await verifier().verify(request)).ok).toBe(true);
  });
});
