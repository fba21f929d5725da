import { describe, expect, it } from 'vitest';
import {
  FLOOD_MIN_USERS,
  LOCK_AFTER_FAILURES,
  basicAuth,
  floodProblems,
  floodUserCount,
  floodUsers,
  htpasswdLine,
  parseTokenAnswer,
  tokenServerConfig,
  type FloodReport,
} from '../../bench/auth.js';
import { wrkScript } from '../../bench/load.js';
import { Results, type MetricDef } from '../../bench/metrics.js';
import { abTableRows, metricsJson, tableRows } from '../../bench/report.js';
import { registryConfig } from '../../bench/servers.js';

describe('htpasswdLine', () => {
  it('writes the $2y$ prefix that htpasswd -B writes', () => {
    const hash = '$2b$10$8nrqw2gUsK2N9IcVwLkHOuI.V/HO5t8BJB1xwq7R3.ep.YkseIlP2';
    expect(htpasswdLine('bench', hash)).toBe('bench:$2y$10$8nrqw2gUsK2N9IcVwLkHOuI.V/HO5t8BJB1xwq7R3.ep.YkseIlP2');
    expect(htpasswdLine('bench', hash.replace('$2b$', '$2y$'))).toBe(htpasswdLine('bench', hash));
  });

  it('refuses what is not a bcrypt hash or a user name', () => {
    expect(() => htpasswdLine('bench', '{SHA}abc')).toThrow(/not a bcrypt hash/);
    expect(() => htpasswdLine('a:b', '$2b$10$x')).toThrow(/user name/);
    expect(() => htpasswdLine('', '$2b$10$x')).toThrow(/user name/);
  });
});

describe('basicAuth', () => {
  it('encodes user:password in base64', () => {
    expect(basicAuth('bench', 'pw')).toBe(`Basic ${Buffer.from('bench:pw').toString('base64')}`);
  });
});

describe('tokenServerConfig', () => {
  it('is the auth section with htpasswd and the token server, and goes into ours only', () => {
    const extra = tokenServerConfig('/a/htpasswd', '/a/key.pem');
    expect(extra).toEqual({
      auth: {
        htpasswd: { realm: 'ocireg', path: '/a/htpasswd' },
        tokenserver: { enabled: true, issuer: 'ocireg', service: 'ocireg', key: '/a/key.pem' },
      },
    });
    const ours = registryConfig('ours', '/r', 5000, 'info', 's', extra);
    expect(ours).toMatchObject({ index: { path: '/r/index.db' }, auth: extra.auth, http: { addr: '127.0.0.1:5000' } });
    expect(registryConfig('distribution', '/r', 5000, 'info', 's', extra)).not.toHaveProperty('auth');
    expect(registryConfig('ours', '/r', 5000, 'info', 's')).not.toHaveProperty('auth');
  });
});

describe('the flood users', () => {
  it('are enough that none reaches the lock within a repetition', () => {
    for (const seconds of [1, 5, 20, 120]) {
      const n = floodUserCount(20, seconds);
      expect(n).toBeGreaterThanOrEqual(FLOOD_MIN_USERS);
      expect(n % 2).toBe(0);
      // requests of a repetition (lead, load and a second of slack), spread over the names
      expect(Math.ceil((20 * (seconds + 2)) / n)).toBeLessThan(LOCK_AFTER_FAILURES);
    }
    expect(floodUserCount(20, 5)).toBe(FLOOD_MIN_USERS);
  });

  it('are fresh each repetition, half of them existing', () => {
    const r0 = floodUsers(0, 50);
    const r1 = floodUsers(1, 50);
    expect(r0).toHaveLength(50);
    expect(r0.filter((u) => u.exists)).toHaveLength(25);
    expect(new Set([...r0, ...r1].map((u) => u.name)).size).toBe(100);
    expect(r0[0]).toEqual({ name: 'flood-r0-u0', exists: true });
    expect(r0[1]).toEqual({ name: 'nobody-r0-u1', exists: false });
  });
});

describe('parseTokenAnswer', () => {
  const ok = { token: 'abc', access_token: 'abc', expires_in: 300, issued_at: '2026-12-03T17:00:00Z' };

  it('takes the token and its lifetime', () => {
    expect(parseTokenAnswer(JSON.stringify(ok))).toEqual({ token: 'abc', expiresIn: 300 });
    const { access_token: _, ...without } = ok;
    expect(parseTokenAnswer(JSON.stringify(without)).token).toBe('abc');
  });

  it('refuses incomplete answers', () => {
    expect(() => parseTokenAnswer('nope')).toThrow(/not JSON/);
    expect(() => parseTokenAnswer('null')).toThrow(/no token/);
    expect(() => parseTokenAnswer(JSON.stringify({ ...ok, token: '' }))).toThrow(/no token/);
    expect(() => parseTokenAnswer(JSON.stringify({ ...ok, access_token: 'other' }))).toThrow(/access_token/);
    expect(() => parseTokenAnswer(JSON.stringify({ ...ok, expires_in: 0 }))).toThrow(/expires_in/);
    expect(() => parseTokenAnswer(JSON.stringify({ ...ok, issued_at: 'yesterday' }))).toThrow(/issued_at/);
  });
});

describe('floodProblems', () => {
  const report = (statuses: Record<number, number>, errors = 0): FloodReport => ({
    sent: 10,
    skipped: 0,
    statuses,
    errors,
    firstError: errors ? 'socket hang up' : '',
    firstUnexpected: 'HTTP 500',
    seconds: 1,
    drainedSeconds: 1,
    medianMs: 1,
    p99Ms: 1,
  });

  it('accepts 401 and 429 only, and no failed request', () => {
    expect(floodProblems(report({ 401: 7, 429: 3 }))).toBeUndefined();
    expect(floodProblems(report({ 401: 7, 500: 2, 200: 1 }))).toMatch(/1 × 200, 2 × 500; first:\nHTTP 500/);
    expect(floodProblems(report({ 401: 7 }, 3))).toMatch(/3 requests failed without an answer, first: socket hang up/);
  });
});

describe('wrkScript', () => {
  it('sets the other headers too', () => {
    expect(wrkScript('a/b', { Authorization: 'Bearer x' })).toBe('wrk.headers["Accept"] = "a/b"\nwrk.headers["Authorization"] = "Bearer x"\n');
  });
});

describe('ours-only A/B figures', () => {
  const defs: MetricDef[] = [
    { id: 'v.rps', workload: 'manifest', label: 'versus', unit: 'req/s', better: 'higher', target: { kind: 'ratio', min: 3 } },
    { id: 'a.plain.rps', workload: 'auth', label: 'plain', unit: 'req/s', better: 'higher', oursOnly: true },
    { id: 'a.plain.p99', workload: 'auth', label: 'plain p99', unit: 'ms', better: 'lower', oursOnly: true },
    { id: 'a.auth.rps', workload: 'auth', label: 'auth', unit: 'req/s', better: 'higher', baseline: 'a.plain.rps', target: { kind: 'ratio', min: 0.7 } },
    { id: 'a.auth.p99', workload: 'auth', label: 'auth p99', unit: 'ms', better: 'lower', baseline: 'a.plain.p99' },
  ];

  function sample(): Results {
    const r = new Results(defs);
    r.record('v.rps', 'ours', 900);
    r.record('v.rps', 'distribution', 300);
    for (const [plain, auth, p99Plain, p99Auth] of [
      [1000, 800, 4, 5],
      [1200, 900, 5, 8],
      [1100, 700, 6, 6],
    ] as const) {
      r.record('a.plain.rps', 'ours', plain);
      r.record('a.auth.rps', 'ours', auth);
      r.record('a.plain.p99', 'ours', p99Plain);
      r.record('a.auth.p99', 'ours', p99Auth);
    }
    return r;
  }

  it('are compared with their baseline, not with distribution', () => {
    const r = sample();
    expect(r.summary('a.auth.rps')).toMatchObject({ ratio: 800 / 1100, baselineMedian: 1100, met: true });
    expect(r.summary('a.auth.p99')).toMatchObject({ ratio: 5 / 6, baselineMedian: 5 });
    expect(r.summary('a.plain.rps')).toMatchObject({ ratio: undefined, baselineMedian: undefined, met: undefined });
    expect(r.summary('v.rps')).toMatchObject({ ratio: 3, baselineMedian: undefined });
  });

  it('go into their own table, and stay out of the ours/distribution one', () => {
    const summaries = sample().summaries();
    expect(tableRows(summaries, { withDistribution: true }).map((row) => row[0])).toEqual(['workload', 'versus']);
    expect(abTableRows(summaries)).toEqual([
      ['ours-only A/B (ours vs ours)', 'unit', 'figure', 'baseline', '× baseline', 'target', 'met'],
      ['plain', 'req/s', '1,100', '', '—', '', ''],
      ['plain p99', 'ms', '5', '', '—', '', ''],
      ['auth', 'req/s', '800', '1,100', '0.73×', '≥0.70×', 'yes'],
      ['auth p99', 'ms', '6', '5', '0.83×', '', ''],
    ]);
    expect(abTableRows(new Results(defs).summaries())).toEqual([]);
  });

  it('show a missed target as NO and a failed workload as failed', () => {
    const r = sample();
    r.record('a.auth.rps', 'ours', 100);
    r.record('a.auth.rps', 'ours', 100);
    expect(abTableRows(r.summaries())[3]).toEqual(['auth', 'req/s', '700', '1,100', '0.64×', '≥0.70×', 'NO']);
    r.fail('auth', 'boom');
    expect(abTableRows(r.summaries())[3]).toEqual(['auth', 'req/s', 'failed', 'failed', '—', '≥0.70×', 'FAILED']);
  });

  it('keep their baseline in the JSON', () => {
    const json = metricsJson(sample().summaries());
    expect(json.find((m) => m.id === 'a.auth.rps')).toMatchObject({ baseline: 'a.plain.rps', baselineMedian: 1100, met: true });
    expect(json.find((m) => m.id === 'v.rps')).toMatchObject({ baseline: null, baselineMedian: null, ratioOursBetter: 3 });
  });
});
