import { describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/auth/authenticator.js';
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
