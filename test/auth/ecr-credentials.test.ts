import { describe, expect, it } from 'vitest';
import { EcrCredentials, LOGIN_PASSWORD_TTL_MS, MAX_TOKEN_LENGTH } from '../../src/auth/ecr-credentials.js';
import type { EcrCredential } from '../../src/config/config.js';

const CI: EcrCredential = Object.freeze({ accessKeyId: 'AKIAEXAMPLECI00001', secretAccessKey: 'ci-secret-ci-secret-ci-secret', user: 'ci' });
const OPS: EcrCredential = Object.freeze({ accessKeyId: 'AKIAEXAMPLEOPS0001', secretAccessKey: 'ops-secret-ops-secret-ops', user: 'ops' });
const DIGEST = `sha256:${'a'.repeat(64)}`;

/** A clock the test moves. */
function clock(start = Date.UTC(2025, 0, 2, 3, 4, 5)) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('EcrCredentials: login passwords', () => {
  it('issues a password without ":" that works for 12 hours, for its own credential', () => {
    const time = clock();
    const creds = new EcrCredentials([CI, OPS], { now: time.now });
    const { password, expiresAt } = creds.issueLoginPassword(CI);
    expect(password).not.toContain(':');
    expect(expiresAt).toBe(time.now() + LOGIN_PASSWORD_TTL_MS);
    expect(LOGIN_PASSWORD_TTL_MS).toBe(12 * 3600_000);
    expect(creds.checkLoginPassword(password)).toEqual({ ok: true, credential: CI, expiresAt });
    time.advance(LOGIN_PASSWORD_TTL_MS - 1);
    expect(creds.checkLoginPassword(password)).toMatchObject({ ok: true, credential: { user: 'ci' } });
    time.advance(1);
    expect(creds.checkLoginPassword(password)).toEqual({ ok: false, reason: 'expired' });
  });

  it('is stateless: another instance with the same configuration accepts it (several nodes)', () => {
    const time = clock();
    const { password } = new EcrCredentials([CI], { now: time.now }).issueLoginPassword(CI);
    // A fresh copy of the configuration, as another node loads it.
    const other = new EcrCredentials([{ ...OPS }, { ...CI }], { now: time.now });
    expect(other.checkLoginPassword(password)).toMatchObject({ ok: true, credential: { ...CI } });
  });

  it('refuses a password once its credential is removed or its secret changed, as invalid (not expired)', () => {
    const time = clock();
    const { password } = new EcrCredentials([CI, OPS], { now: time.now }).issueLoginPassword(CI);
    expect(new EcrCredentials([OPS], { now: time.now }).checkLoginPassword(password)).toEqual({ ok: false, reason: 'invalid' });
    const rotated = { ...CI, secretAccessKey: 'a-new-secret-a-new-secret' };
    expect(new EcrCredentials([rotated], { now: time.now }).checkLoginPassword(password)).toEqual({ ok: false, reason: 'invalid' });
    // Removed and long expired: still only invalid, nothing tells it was ever issued.
    time.advance(LOGIN_PASSWORD_TTL_MS * 2);
    expect(new EcrCredentials([OPS], { now: time.now }).checkLoginPassword(password)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('refuses tampering: another key id, a later expiry, a changed MAC, and malformed text', () => {
    const time = clock();
    const creds = new EcrCredentials([CI, OPS], { now: time.now });
    const { password } = creds.issueLoginPassword(CI);
    const [prefix, id, expiry, mac] = password.split('.') as [string, string, string, string];
    const flipped = mac.slice(0, -1) + (mac.endsWith('A') ? 'B' : 'A');
    for (const forged of [
      [prefix, OPS.accessKeyId, expiry, mac].join('.'),
      [prefix, id, String(Number(expiry) + 3600_000), mac].join('.'),
      [prefix, id, expiry, flipped].join('.'),
      [prefix, id, expiry].join('.'),
      ['ecr2', id, expiry, mac].join('.'),
      [prefix, id, `0${expiry}`, mac].join('.'),
      [prefix, id, expiry, mac, 'x'].join('.'),
      '',
      'AWS',
      `${password}x`,
    ]) {
      expect(creds.checkLoginPassword(forged), forged).toEqual({ ok: false, reason: 'invalid' });
    }
  });

  it('bounds the input before any work', () => {
    const creds = new EcrCredentials([CI]);
    expect(creds.checkLoginPassword('x'.repeat(MAX_TOKEN_LENGTH + 1))).toEqual({ ok: false, reason: 'invalid' });
    expect(creds.checkLoginPassword('.'.repeat(1_000_000))).toEqual({ ok: false, reason: 'invalid' });
  });

  it('does not take a download token as a password, nor the reverse', () => {
    const time = clock();
    const creds = new EcrCredentials([CI], { now: time.now });
    const download = creds.signDownload(CI, 'app', DIGEST, time.now() + 60_000);
    expect(creds.checkLoginPassword(`ecr1.${download}`)).toEqual({ ok: false, reason: 'invalid' });
    const { password } = creds.issueLoginPassword(CI);
    const [, id, expiry, mac] = password.split('.');
    expect(creds.verifyDownload([id, expiry, mac].join('.'), 'app', DIGEST)).toBe(false);
  });
});

describe('EcrCredentials: download tokens', () => {
  it('verifies for the repository and digest it was made for, until it expires', () => {
    const time = clock();
    const creds = new EcrCredentials([CI], { now: time.now });
    const token = creds.signDownload(CI, 'team/app', DIGEST, time.now() + 600_000);
    expect(token).toMatch(/^[A-Za-z0-9._-]+$/); // a query value as it is
    expect(creds.verifyDownload(token, 'team/app', DIGEST)).toBe(true);
    expect(creds.verifyDownload(token, 'team/other', DIGEST)).toBe(false);
    expect(creds.verifyDownload(token, 'team/app', `sha256:${'b'.repeat(64)}`)).toBe(false);
    // Fields are length-prefixed: moving a character from the repository to the digest does not verify.
    expect(creds.verifyDownload(token, 'team/ap', `p${DIGEST}`)).toBe(false);
    time.advance(600_000);
    expect(creds.verifyDownload(token, 'team/app', DIGEST)).toBe(false);
  });

  it('refuses a token whose credential is gone, a forged expiry, and oversized or malformed text', () => {
    const time = clock();
    const creds = new EcrCredentials([CI], { now: time.now });
    const token = creds.signDownload(CI, 'app', DIGEST, time.now() + 60_000);
    expect(new EcrCredentials([OPS], { now: time.now }).verifyDownload(token, 'app', DIGEST)).toBe(false);
    const [id, expiry, mac] = token.split('.') as [string, string, string];
    expect(creds.verifyDownload([id, String(Number(expiry) + 1), mac].join('.'), 'app', DIGEST)).toBe(false);
    expect(creds.verifyDownload('x'.repeat(MAX_TOKEN_LENGTH + 1), 'app', DIGEST)).toBe(false);
    expect(creds.verifyDownload('', 'app', DIGEST)).toBe(false);
    expect(creds.verifyDownload(`${token}.x`, 'app', DIGEST)).toBe(false);
  });

  it('refuses to sign an expiry that is not a positive whole number of milliseconds', () => {
    const creds = new EcrCredentials([CI]);
    for (const bad of [0, -1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER * 2]) {
      expect(() => creds.signDownload(CI, 'app', DIGEST, bad), String(bad)).toThrow(RangeError);
    }
  });

  it('finds a credential by its access key id only', () => {
    const creds = new EcrCredentials([CI, OPS]);
    expect(creds.find(OPS.accessKeyId)).toBe(OPS);
    expect(creds.find('AKIAUNKNOWN0000000')).toBeUndefined();
    expect(creds.find('')).toBeUndefined();
  });
});
