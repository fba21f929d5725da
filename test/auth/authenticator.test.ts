import { describe, expect, it } from 'vitest';
import { Authenticator, ECR_TOKEN_KEY_PREFIX } from '../../src/auth/authenticator.js';
import { EcrCredentials, LOGIN_PASSWORD_TTL_MS } from '../../src/auth/ecr-credentials.js';
import { PasswordCheckBusyError, type HtpasswdUsers } from '../../src/auth/htpasswd.js';
import { LoginThrottle } from '../../src/auth/login-throttle.js';
import { TokenInvalidError, type TokenVerifier, type VerifiedToken } from '../../src/auth/token-verifier.js';

/** A verifier that accepts tokens named in `tokens` and counts how often it is asked. */
function countingVerifier(tokens: Record<string, VerifiedToken>): TokenVerifier & { calls: number } {
  const verifier = {
    calls: 0,
    async verify(token: string) {
      verifier.calls++;
      const found = tokens[token];
      if (!found) throw new TokenInvalidError('unknown');
      return found;
    },
  };
  return verifier;
}

describe('Authenticator with bearer tokens', () => {
  const access = [{ type: 'repository', name: 'a/b', actions: ['pull'] }];

  it('checks a token once and answers from memory until it expires', async () => {
    const verifier = countingVerifier({
      lasting: { subject: 'alice', access, external: true, expiresAt: Date.now() + 60_000 },
      expired: { subject: 'alice', access, external: true, expiresAt: Date.now() - 1 },
    });
    const auth = new Authenticator({ throttle: new LoginThrottle(), tokens: verifier });
    for (let i = 0; i < 3; i++) {
      const result = await auth.authenticate('Bearer lasting', '10.0.0.1');
      expect(result).toMatchObject({ ok: true, identity: { kind: 'user', name: 'alice', tokenAccess: access } });
    }
    expect(verifier.calls).toBe(1);
    // Past its exp a remembered token is checked again (and here the verifier would still take it
    // within its leeway; what matters is that the cache does not answer for it).
    await auth.authenticate('Bearer expired', '10.0.0.1');
    await auth.authenticate('Bearer expired', '10.0.0.1');
    expect(verifier.calls).toBe(3);
  });

  it('remembers no refusal', async () => {
    const verifier = countingVerifier({});
    const auth = new Authenticator({ throttle: new LoginThrottle(), tokens: verifier });
    expect(await auth.authenticate('Bearer forged', '10.0.0.1')).toMatchObject({ ok: false, reason: 'invalid' });
    expect(await auth.authenticate('Bearer forged', '10.0.0.1')).toMatchObject({ ok: false, reason: 'invalid' });
    expect(verifier.calls).toBe(2);
  });

  it('refuses bearer tokens where no verifier is configured, and unknown schemes without echoing them', async () => {
    const auth = new Authenticator({ throttle: new LoginThrottle() });
    expect(await auth.authenticate('Bearer x', '10.0.0.1')).toMatchObject({ ok: false, reason: 'invalid' });
    const odd = await auth.authenticate('ocik_secretsecret', '10.0.0.1');
    expect(odd).toMatchObject({ ok: false, reason: 'invalid' });
    expect(JSON.stringify(odd)).not.toContain('secret');
  });
});

describe('Authenticator with passwords', () => {
  it('answers busy, and counts no failure, when too many password checks are waiting', async () => {
    const users = {
      has: () => true,
      recentlyVerified: () => false,
      verify: async () => {
        throw new PasswordCheckBusyError('too many password checks waiting');
      },
    } as unknown as HtpasswdUsers;
    const throttle = new LoginThrottle();
    const auth = new Authenticator({ users, throttle });
    for (let i = 0; i < 10; i++) {
      expect(await auth.checkPassword({ user: 'alice', password: `pw-${i}` }, '10.0.0.1')).toEqual({ ok: false, reason: 'busy', retryAfterSeconds: 1 });
    }
    expect(throttle.check('10.0.0.1', 'alice')).toEqual({ allowed: true });
  });
});

describe('Authenticator with ECR logins (user AWS)', () => {
  const CI = { accessKeyId: 'AKIAEXAMPLECI00001', secretAccessKey: 'ci-secret-ci-secret-ci', user: 'ci' };
  const basicAws = (password: string) => `Basic ${Buffer.from(`AWS:${password}`).toString('base64')}`;
  let now = Date.UTC(2025, 0, 2);
  const ecr = new EcrCredentials([CI], { now: () => now });

  it('signs in user AWS with a GetAuthorizationToken password as the key pair\'s user, without htpasswd', async () => {
    const auth = new Authenticator({ throttle: new LoginThrottle(), ecr });
    expect(auth.acceptsPasswords).toBe(true);
    const { password } = ecr.issueLoginPassword(CI);
    expect(await auth.authenticate(basicAws(password), '10.0.0.1')).toEqual({
      ok: true,
      identity: { kind: 'user', name: 'ci', via: 'ecr', keyId: CI.accessKeyId },
    });
    // Other users still need an htpasswd file.
    expect(await auth.checkPassword({ user: 'ci', password }, '10.0.0.1')).toMatchObject({ ok: false, reason: 'invalid' });
  });

  it('counts wrong passwords per (address, key id named), so that guesses lock that key only', async () => {
    const throttle = new LoginThrottle({ maxFailures: 3 });
    const auth = new Authenticator({ throttle, ecr });
    const { password } = ecr.issueLoginPassword(CI);
    // Garbage that names no key: it locks only the garbage, not the ECR users of the address.
    for (let i = 0; i < 3; i++) {
      expect(await auth.checkPassword({ user: 'AWS', password: `guess-${i}` }, '10.0.0.2')).toMatchObject({ ok: false, reason: 'invalid' });
    }
    expect(await auth.checkPassword({ user: 'AWS', password: 'guess-3' }, '10.0.0.2')).toMatchObject({ ok: false, reason: 'throttled' });
    expect(await auth.checkPassword({ user: 'AWS', password }, '10.0.0.2')).toMatchObject({ ok: true });
    // Forged passwords naming CI's key lock that key at that address.
    const forged = password.replace(/\.[^.]+$/, '.AAAA');
    for (let i = 0; i < 3; i++) {
      expect(await auth.checkPassword({ user: 'AWS', password: forged }, '10.0.0.5')).toMatchObject({ ok: false, reason: 'invalid' });
    }
    expect(await auth.checkPassword({ user: 'AWS', password }, '10.0.0.5')).toMatchObject({ ok: false, reason: 'throttled' });
    // Another address is not held up.
    expect(await auth.checkPassword({ user: 'AWS', password }, '10.0.0.3')).toMatchObject({ ok: true });
  });

  it('answers expired for an expired password, without counting it as a guess', async () => {
    const throttle = new LoginThrottle({ maxFailures: 2 });
    const auth = new Authenticator({ throttle, ecr });
    const { password } = ecr.issueLoginPassword(CI);
    now += LOGIN_PASSWORD_TTL_MS;
    try {
      for (let i = 0; i < 3; i++) {
        expect(await auth.checkPassword({ user: 'AWS', password }, '10.0.0.4')).toMatchObject({ ok: false, reason: 'expired' });
      }
      expect(throttle.check('10.0.0.4', 'AWS')).toEqual({ allowed: true });
    } finally {
      now -= LOGIN_PASSWORD_TTL_MS;
    }
  });

  it('leaves user AWS to htpasswd when ECR is off', async () => {
    const users = { has: () => false, recentlyVerified: () => false, verify: async () => false } as unknown as HtpasswdUsers;
    const auth = new Authenticator({ users, throttle: new LoginThrottle() });
    const { password } = ecr.issueLoginPassword(CI);
    expect(await auth.checkPassword({ user: 'AWS', password }, '10.0.0.5')).toMatchObject({ ok: false, reason: 'invalid' });
  });

  it('accepts a token of ours issued to an ECR login while its key pair is configured, for the same user', async () => {
    const access = [{ type: 'repository', name: 'a/b', actions: ['pull'] }];
    const token = (keyId: string, subject = 'ci'): VerifiedToken => ({ subject, access, external: false, keyId, expiresAt: Date.now() + 60_000 });
    const verifier = countingVerifier({
      good: token(`${ECR_TOKEN_KEY_PREFIX}${CI.accessKeyId}`),
      gone: token(`${ECR_TOKEN_KEY_PREFIX}AKIAREMOVED0000000`),
      otherUser: token(`${ECR_TOKEN_KEY_PREFIX}${CI.accessKeyId}`, 'mallory'),
    });
    // An htpasswd file that does not know "ci": the key pair vouches for it.
    const users = { has: () => false } as unknown as HtpasswdUsers;
    const auth = new Authenticator({ users, throttle: new LoginThrottle(), tokens: verifier, ecr });
    expect(await auth.authenticate('Bearer good', '10.0.0.1')).toEqual({
      ok: true,
      identity: { kind: 'user', name: 'ci', via: 'token', keyId: CI.accessKeyId, tokenAccess: access },
    });
    expect(await auth.authenticate('Bearer gone', '10.0.0.1')).toMatchObject({ ok: false, reason: 'invalid' });
    expect(await auth.authenticate('Bearer otherUser', '10.0.0.1')).toMatchObject({ ok: false, reason: 'invalid' });
    // Without ECR configured any more, the same token is refused.
    const withoutEcr = new Authenticator({ users, throttle: new LoginThrottle(), tokens: verifier });
    expect(await withoutEcr.authenticate('Bearer good', '10.0.0.1')).toMatchObject({ ok: false, reason: 'invalid' });
  });
});
