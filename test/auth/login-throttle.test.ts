import { describe, expect, it } from 'vitest';
import { LoginThrottle, type LoginThrottleOptions } from '../../src/auth/login-throttle.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;

function setup(options: LoginThrottleOptions = {}) {
  let now = 1_000_000;
  const throttle = new LoginThrottle({ now: () => now, ...options });
  return {
    throttle,
    advance: (ms: number) => {
      now += ms;
    },
    /** n failures for the pair, `gap` ms apart (no wait after the last one). */
    fail: (n: number, address = '10.0.0.1', user = 'alice', gap = 0) => {
      for (let i = 0; i < n; i++) {
        if (i > 0) now += gap;
        throttle.failed(address, user);
      }
    },
  };
}

describe('LoginThrottle', () => {
  it('counts different passwords in flight for the pair as failures in advance', () => {
    const { throttle, fail } = setup();
    fail(3);
    expect(throttle.check('10.0.0.1', 'alice', 1)).toEqual({ allowed: true });
    expect(throttle.check('10.0.0.1', 'alice', 2)).toEqual({ allowed: false, retryAfterSeconds: 60 });
    expect(throttle.check('10.0.0.1', 'alice', 5).allowed).toBe(false);
    expect(throttle.check('10.0.0.2', 'alice', 4)).toEqual({ allowed: true });
  });

  it('makes an address wait after 30 failures within a minute across user names, and no other address', () => {
    const { throttle, fail, advance } = setup();
    for (let i = 0; i < 29; i++) fail(1, '10.0.0.9', `user-${i}`);
    expect(throttle.checkAddress('10.0.0.9')).toEqual({ allowed: true });
    fail(1, '10.0.0.9', 'user-29');
    expect(throttle.checkAddress('10.0.0.9')).toEqual({ allowed: false, retryAfterSeconds: 60 });
    expect(throttle.checkAddress('10.0.0.8')).toEqual({ allowed: true });
    // Each of those pairs failed once only: the pair locks are not involved.
    expect(throttle.check('10.0.0.9', 'user-0')).toEqual({ allowed: true });
    advance(60 * SECOND);
    expect(throttle.checkAddress('10.0.0.9')).toEqual({ allowed: true });
  });

  it('allows a pair with fewer than five failures', () => {
    const { throttle, fail } = setup();
    expect(throttle.check('10.0.0.1', 'alice')).toEqual({ allowed: true });
    fail(4);
    expect(throttle.check('10.0.0.1', 'alice')).toEqual({ allowed: true });
  });

  it('locks the pair for 60 s after five failures within a minute', () => {
    const { throttle, fail, advance } = setup();
    fail(5, '10.0.0.1', 'alice', 10 * SECOND);
    expect(throttle.check('10.0.0.1', 'alice')).toEqual({ allowed: false, retryAfterSeconds: 60 });
    advance(59 * SECOND + 500);
    expect(throttle.check('10.0.0.1', 'alice')).toEqual({ allowed: false, retryAfterSeconds: 1 });
    advance(500);
    expect(throttle.check('10.0.0.1', 'alice')).toEqual({ allowed: true });
  });

  it('uses a sliding window: failures older than a minute do not count', () => {
    const { throttle, fail, advance } = setup();
    fail(4, '10.0.0.1', 'alice', 15 * SECOND); // at 0, 15, 30, 45 s
    advance(16 * SECOND); // 61 s: the first failure has left the window
    fail(1);
    expect(throttle.check('10.0.0.1', 'alice').allowed).toBe(true);
    advance(14 * SECOND); // 75 s: the failure at 15 s has left, 30, 45, 61 and this one remain
    fail(1);
    expect(throttle.check('10.0.0.1', 'alice').allowed).toBe(true);
    fail(1); // five within the last minute
    expect(throttle.check('10.0.0.1', 'alice').allowed).toBe(false);
  });

  it('doubles each following lock of the same pair, up to 15 minutes', () => {
    const { throttle, fail, advance } = setup();
    const expected = [60, 120, 240, 480, 900, 900];
    for (const seconds of expected) {
      fail(5);
      expect(throttle.check('10.0.0.1', 'alice')).toEqual({ allowed: false, retryAfterSeconds: seconds });
      advance(seconds * SECOND);
      expect(throttle.check('10.0.0.1', 'alice').allowed).toBe(true);
    }
  });

  it('does not count or extend on failures reported while locked', () => {
    const { throttle, fail, advance } = setup();
    fail(5);
    advance(30 * SECOND);
    fail(10);
    expect(throttle.check('10.0.0.1', 'alice')).toEqual({ allowed: false, retryAfterSeconds: 30 });
    advance(30 * SECOND);
    fail(4);
    expect(throttle.check('10.0.0.1', 'alice').allowed).toBe(true);
  });

  it('isolates pairs: another address for the user, another user from the address', () => {
    const { throttle, fail } = setup();
    fail(5, '10.0.0.1', 'alice');
    expect(throttle.check('10.0.0.1', 'alice').allowed).toBe(false);
    expect(throttle.check('10.0.0.2', 'alice').allowed).toBe(true);
    expect(throttle.check('10.0.0.1', 'bob').allowed).toBe(true);
    // The key is unambiguous: address "1" + user "0alice" is not address "10" + user "alice".
    fail(5, '1', '0alice');
    expect(throttle.check('10', 'alice').allowed).toBe(true);
  });

  it('clears the pair, its failures and its doubling, on success', () => {
    const { throttle, fail, advance } = setup();
    fail(5);
    advance(60 * SECOND);
    fail(4);
    throttle.succeeded('10.0.0.1', 'alice');
    fail(1);
    expect(throttle.check('10.0.0.1', 'alice').allowed).toBe(true);
    fail(4);
    expect(throttle.check('10.0.0.1', 'alice')).toEqual({ allowed: false, retryAfterSeconds: 60 });
  });

  it('forgets a pair after an hour without failures, so its next lock is a first one', () => {
    const { throttle, fail, advance } = setup();
    fail(5);
    advance(60 * SECOND);
    fail(5);
    expect(throttle.check('10.0.0.1', 'alice')).toEqual({ allowed: false, retryAfterSeconds: 120 });
    advance(59 * MINUTE);
    fail(5); // within the hour: doubling goes on
    expect(throttle.check('10.0.0.1', 'alice')).toEqual({ allowed: false, retryAfterSeconds: 240 });
    advance(60 * MINUTE);
    expect(throttle.check('10.0.0.1', 'alice').allowed).toBe(true);
    expect(throttle.size).toBe(0);
    fail(5);
    expect(throttle.check('10.0.0.1', 'alice')).toEqual({ allowed: false, retryAfterSeconds: 60 });
  });

  it('drops forgotten pairs as new failures come in', () => {
    const { throttle, fail, advance } = setup();
    fail(1, 'a', 'u');
    fail(1, 'b', 'u');
    advance(61 * MINUTE);
    fail(1, 'c', 'u');
    expect(throttle.size).toBe(1);
  });

  it('keeps at most maxEntries pairs, dropping the oldest', () => {
    const { throttle, fail, advance } = setup({ maxEntries: 3 });
    for (const address of ['a', 'b', 'c', 'd']) {
      fail(4, address);
      advance(SECOND);
    }
    expect(throttle.size).toBe(3);
    fail(1, 'a'); // a was dropped: this is its first failure again
    expect(throttle.check('a', 'alice').allowed).toBe(true);
    fail(1, 'c'); // c was kept: its fifth failure locks it
    expect(throttle.check('c', 'alice').allowed).toBe(false);
    expect(throttle.size).toBe(3);
  });

  it('keeps a locked pair when a flood of new pairs fills the table', () => {
    const { throttle, fail } = setup({ maxEntries: 10 });
    fail(5, 'attacker', 'alice');
    for (let i = 0; i < 50; i++) fail(1, 'attacker', `user${i}`);
    expect(throttle.size).toBe(10);
    expect(throttle.check('attacker', 'alice').allowed).toBe(false);
  });

  it('honours its options', () => {
    const { throttle, fail } = setup({ maxFailures: 2, firstLockMs: 5 * SECOND, maxLockMs: 8 * SECOND });
    fail(2);
    expect(throttle.check('10.0.0.1', 'alice')).toEqual({ allowed: false, retryAfterSeconds: 5 });
  });
});
