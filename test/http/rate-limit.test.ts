import { Writable } from 'node:stream';
import { rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import { errorCode, startRegistry, tempDir } from '../helpers.js';

describe('http.ratelimit', () => {
  it('answers 429 TOOMANYREQUESTS with Retry-After past the burst, per client address, with per-method limits', async () => {
    const reg = await startRegistry({ http: { ratelimit: { rate: 1, burst: 3, methods: [{ method: 'HEAD', rate: 100, burst: 100 }] } } });
    try {
      const get = (remoteAddress: string) => reg.app.inject({ method: 'GET', url: '/v2/', remoteAddress });
      for (let i = 0; i < 3; i++) expect((await get('10.1.1.1')).statusCode).toBe(200);
      const limited = await get('10.1.1.1');
      expect(limited.statusCode).toBe(429);
      expect(errorCode(limited)).toBe('TOOMANYREQUESTS');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      // Another address has its own allowance; HEAD has its own, larger one.
      expect((await get('10.1.1.2')).statusCode).toBe(200);
      for (let i = 0; i < 10; i++) {
        expect((await reg.app.inject({ method: 'HEAD', url: '/v2/', remoteAddress: '10.1.1.1' })).statusCode).toBe(200);
      }
    } finally {
      await reg.destroy();
    }
  });

  it('limits nothing without the section', async () => {
    const reg = await startRegistry();
    try {
      for (let i = 0; i < 50; i++) expect((await reg.app.inject({ method: 'GET', url: '/v2/' })).statusCode).toBe(200);
    } finally {
      await reg.destroy();
    }
  });
});

describe('serving without auth', () => {
  it('warns when it listens beyond loopback without an auth section, and not on loopback', async () => {
    for (const [addr, warned] of [['0.0.0.0:0', true], ['127.0.0.1:0', false]] as const) {
      const dir = await tempDir();
      const lines: string[] = [];
      const stream = new Writable({
        write(chunk, _enc, done) {
          lines.push(String(chunk));
          done();
        },
      });
      const config = loadConfig({ env: {}, overrides: { http: { addr }, storage: { filesystem: { rootdirectory: dir } } } });
      const app = await buildApp(config, { logger: { level: 'warn', stream } });
      await app.close();
      await rm(dir, { recursive: true, force: true });
      expect(lines.some((l) => l.includes('no auth section')), addr).toBe(warned);
    }
  });
});
