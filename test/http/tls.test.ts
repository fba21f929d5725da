import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config.js';
import { startRegistry, tempDir } from '../helpers.js';

describe('TLS (http.tls)', () => {
  let dir: string;
  let certificate: string;
  let key: string;

  beforeAll(async () => {
    dir = await tempDir('ocireg-tls-');
    certificate = join(dir, 'cert.pem');
    key = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', certificate],
      { stdio: 'ignore', timeout: 30_000 },
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the API over HTTPS with the configured certificate', async () => {
    const reg = await startRegistry({ http: { tls: { certificate, key } } });
    try {
      await reg.app.listen({ host: '127.0.0.1', port: 0 });
      const { port } = reg.app.server.address() as { port: number };
      const res = await new Promise<{ status: number; body: string; cn: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/v2/', rejectUnauthorized: false, timeout: 10_000 }, (r) => {
          const cn = String((r.socket as TLSSocket).getPeerCertificate().subject.CN);
          let body = '';
          r.on('data', (c: Buffer) => (body += c.toString()));
          r.on('end', () => resolve({ status: r.statusCode!, body, cn }));
        });
        req.on('timeout', () => req.destroy(new Error('timed out')));
        req.on('error', reject);
        req.end();
      });
      expect(res.status).toBe(200);
      expect(res.body).toBe('{}');
      expect(res.cn).toBe('localhost');
    } finally {
      await reg.destroy();
    }
  });

  it('refuses to start with a certificate that cannot be read, naming it', async () => {
    await expect(startRegistry({ http: { tls: { certificate: join(dir, 'missing.pem'), key } } })).rejects.toThrow(ConfigError);
    await expect(startRegistry({ http: { tls: { certificate: join(dir, 'missing.pem'), key } } })).rejects.toThrow(/http\.tls\.certificate/);
  });
});
