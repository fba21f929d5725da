import { execFileSync } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { HtpasswdUsers, type HtpasswdLog } from '../../src/auth/htpasswd.js';
import { ConfigError } from '../../src/config/config.js';
import { waitFor } from '../support/socket.js';

/** The same module object src/auth/htpasswd.ts calls, so that spies see its comparisons. */
const bcrypt = createRequire(import.meta.url)('bcrypt') as {
  compare(data: string, encrypted: string): Promise<boolean>;
  hash(data: string, rounds: number): Promise<string>;
};

const dirs: string[] = [];
const opened: HtpasswdUsers[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const u of opened.splice(0)) u.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function fileWith(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ocireg-htpasswd-'));
  dirs.push(dir);
  const path = join(dir, 'htpasswd');
  await writeFile(path, text);
  return path;
}

async function load(path: string, log?: HtpasswdLog, options = {}): Promise<HtpasswdUsers> {
  const users = await HtpasswdUsers.load(path, log, options);
  opened.push(users);
  return users;
}

/** Replaces the file as editors and htpasswd do: a new file renamed over the old one. */
async function replace(path: string, text: string): Promise<void> {
  await writeFile(`${path}.new`, text);
  await rename(`${path}.new`, path);
}

function quietLog() {
  return { info: vi.fn(), error: vi.fn() } satisfies HtpasswdLog;
}

let alice2b: string; // "alice-pw", cost 4
let bob2y: string; // "bob-pw", cost 5, written as htpasswd -B writes it
let carol2a: string; // "carol-pw", cost 4

beforeAll(async () => {
  alice2b = await bcrypt.hash('alice-pw', 4);
  bob2y = (await bcrypt.hash('bob-pw', 5)).replace(/^\$2b\$/, '$2y$');
  carol2a = (await bcrypt.hash('carol-pw', 4)).replace(/^\$2b\$/, '$2a$');
});

describe('HtpasswdUsers.load', () => {
  it('reads bcrypt entries ($2y$, $2a$, $2b$), skipping comments and blank lines, with CRLF line ends', async () => {
    const path = await fileWith(`# users\r\n\r\nalice:${alice2b}\r\n  # indented comment\nbob:${bob2y}\n\ncarol:${carol2a}`);
    const users = await load(path);
    expect(users.size).toBe(3);
    expect(['alice', 'bob', 'carol'].every((u) => users.has(u))).toBe(true);
    expect(users.has('dave')).toBe(false);
    expect(users.generation).toBe(0);
    expect(await users.verify('alice', 'alice-pw')).toBe(true);
    expect(await users.verify('bob', 'bob-pw')).toBe(true);
    expect(await users.verify('carol', 'carol-pw')).toBe(true);
  });

  it('accepts an empty file (nobody can sign in)', async () => {
    const users = await load(await fileWith('# nobody yet\n'));
    expect(users.size).toBe(0);
    expect(await users.verify('alice', 'alice-pw')).toBe(false);
  });

  const refused: Array<[string, string, RegExp]> = [
    ['MD5 (htpasswd -m)', '$apr1$NwokjrfU$Of.mi.t2TnZlOCzjPuqFm1', /MD5 \(apr1\)/],
    ['SHA-1 (htpasswd -s)', '{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=', /SHA-1/],
    ['crypt (htpasswd -d)', 'Gl/qzo6/gDRBM', /crypt \(DES\)/],
    ['plain text (htpasswd -p)', 'secret-password!', /plain text/],
    ['MD5-crypt', '$1$abcdefgh$abcdefghijklmnopqrstuv', /MD5-crypt/],
    ['SHA-512-crypt', '$6$salt$' + 'a'.repeat(86), /SHA-crypt/],
    ['a truncated bcrypt hash', '$2y$05$oMSYpupyGnwZIy6N6VSNUONgX1SyeYgU37rh1Xo', /malformed bcrypt/],
    ['a bcrypt cost htpasswd refuses', '$2y$20$' + 'a'.repeat(53), /cost 20/],
    ['an empty hash', '', /empty/],
  ];
  for (const [what, hash, reason] of refused) {
    it(`refuses ${what}, naming the file, the line and the user but not the hash`, async () => {
      const path = await fileWith(`# header\nalice:${alice2b}\n\nmallory:${hash}\n`);
      const err = await HtpasswdUsers.load(path).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      const message = (err as Error).message;
      expect(message).toContain(path);
      expect(message).toContain('line 4');
      expect(message).toContain('"mallory"');
      expect(message).toMatch(reason);
      if (hash.length > 3) expect(message).not.toContain(hash);
      expect(message).not.toContain(alice2b);
    });
  }

  it('refuses a line without a colon and an empty user name, with their line numbers', async () => {
    const path = await fileWith(`alice:${alice2b}\njust-some-text\n:${alice2b}\n`);
    const message = ((await HtpasswdUsers.load(path).catch((e: unknown) => e)) as Error).message;
    expect(message).toMatch(/line 2: expected user:hash/);
    expect(message).toMatch(/line 3: the user name is empty/);
    expect(message).not.toContain('just-some-text');
    expect(message).not.toContain(alice2b);
  });

  it('refuses a user listed twice, naming both lines', async () => {
    const path = await fileWith(`alice:${alice2b}\nbob:${bob2y}\n# again\nalice:${alice2b}\n`);
    const err = await HtpasswdUsers.load(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/line 4: user "alice" is listed twice \(lines 1 and 4\)/);
  });

  it('names the file when it cannot be read', async () => {
    const path = join(tmpdir(), 'ocireg-no-such-dir', 'htpasswd');
    await expect(HtpasswdUsers.load(path)).rejects.toThrow(path);
  });
});

describe('HtpasswdUsers.verify', () => {
  it('accepts the right password and refuses a wrong one, an unknown user and an empty password', async () => {
    const users = await load(await fileWith(`alice:${alice2b}\nbob:${bob2y}\n`));
    expect(await users.verify('alice', 'alice-pw')).toBe(true);
    expect(await users.verify('alice', 'bob-pw')).toBe(false);
    expect(await users.verify('bob', 'alice-pw')).toBe(false);
    expect(await users.verify('dave', 'alice-pw')).toBe(false);
    expect(await users.verify('alice', '')).toBe(false);
  });

  it('compares an unknown user against a dummy hash of one of the file’s costs, the same one for a name every time', async () => {
    // alice has cost 4, bob cost 5 (mixed costs: an unknown name must answer like some known user).
    const users = await load(await fileWith(`alice:${alice2b}\nbob:${bob2y}\n`));
    const compare = vi.spyOn(bcrypt, 'compare');
    expect(await users.verify('nobody', 'whatever')).toBe(false);
    expect(compare).toHaveBeenCalledTimes(1);
    const dummy = compare.mock.calls[0]![1];
    expect(dummy).toMatch(/^\$2b\$0[45]\$[./A-Za-z0-9]{53}$/);
    expect(dummy).not.toBe(alice2b);
    expect(dummy).not.toBe(bob2y.replace('$2y$', '$2b$'));
    // The same dummy for the same name (made once per load), and a failure is never remembered.
    expect(await users.verify('nobody', 'whatever')).toBe(false);
    expect(compare).toHaveBeenCalledTimes(2);
    expect(compare.mock.calls[1]![1]).toBe(dummy);
    // Over many names, both of the file's costs are used.
    const costs = new Set<string>();
    for (let i = 0; i < 40; i++) {
      await users.verify(`ghost-${i}`, 'x');
      costs.add(String(compare.mock.calls.at(-1)![1]).slice(4, 6));
    }
    expect([...costs].sort()).toEqual(['04', '05']);
  });

  it('uses a cost-10 dummy when the file has no entries', async () => {
    const users = await load(await fileWith(''));
    const compare = vi.spyOn(bcrypt, 'compare');
    expect(await users.verify('nobody', 'x')).toBe(false);
    expect(compare.mock.calls[0]![1]).toMatch(/^\$2b\$10\$/);
  });

  it('remembers a verified password for 60 s, and only a verified one', async () => {
    let now = 1_000_000;
    const users = await load(await fileWith(`alice:${alice2b}\n`), undefined, { now: () => now });
    const compare = vi.spyOn(bcrypt, 'compare');
    expect(await users.verify('alice', 'alice-pw')).toBe(true);
    expect(compare).toHaveBeenCalledTimes(1);
    now += 59_000;
    expect(await users.verify('alice', 'alice-pw')).toBe(true);
    expect(compare).toHaveBeenCalledTimes(1);
    // Another password of the same user is not the remembered one.
    expect(await users.verify('alice', 'alice-pw2')).toBe(false);
    expect(await users.verify('alice', 'alice-pw2')).toBe(false);
    expect(compare).toHaveBeenCalledTimes(3);
    now += 2_000; // 61 s after the first check
    expect(await users.verify('alice', 'alice-pw')).toBe(true);
    expect(compare).toHaveBeenCalledTimes(4);
  });

  it('misses the cache once the file holds another hash for the user', async () => {
    const path = await fileWith(`alice:${alice2b}\n`);
    const users = await load(path, quietLog());
    expect(await users.verify('alice', 'alice-pw')).toBe(true);

    // The same password hashed again (another salt): checked again, still right.
    const rehashed = await bcrypt.hash('alice-pw', 4);
    await replace(path, `alice:${rehashed}\n`);
    expect(await users.reload()).toBe(true);
    const compare = vi.spyOn(bcrypt, 'compare');
    expect(await users.verify('alice', 'alice-pw')).toBe(true);
    expect(compare).toHaveBeenCalledTimes(1);

    // The password changed: the old one is refused at once.
    await replace(path, `alice:${await bcrypt.hash('new-pw', 4)}\n`);
    expect(await users.reload()).toBe(true);
    expect(await users.verify('alice', 'alice-pw')).toBe(false);
    expect(await users.verify('alice', 'new-pw')).toBe(true);
    expect(compare).toHaveBeenCalledTimes(3);
  });

  it('shares one bcrypt comparison between identical checks running at once', async () => {
    const users = await load(await fileWith(`alice:${alice2b}\n`));
    const compare = vi.spyOn(bcrypt, 'compare');
    const results = await Promise.all([
      ...Array.from({ length: 5 }, () => users.verify('alice', 'alice-pw')),
      ...Array.from({ length: 3 }, () => users.verify('alice', 'wrong')),
    ]);
    expect(results).toEqual([true, true, true, true, true, false, false, false]);
    expect(compare).toHaveBeenCalledTimes(2);
  });

  it('reads only the first 72 bytes of a password, as htpasswd -B does', async () => {
    const long = 'p'.repeat(72);
    const users = await load(await fileWith(`alice:${(await bcrypt.hash(`${long}-and-more`, 4)).replace('$2b$', '$2y$')}\n`));
    expect(await users.verify('alice', `${long}-and-more`)).toBe(true);
    expect(await users.verify('alice', long)).toBe(true);
    expect(await users.verify('alice', long.slice(1))).toBe(false);
  });

  const htpasswdInstalled = (() => {
    try {
      execFileSync('htpasswd', ['-bnB', '-C', '4', 'u', 'p'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!htpasswdInstalled)('verifies what htpasswd -B writes (run where apache2-utils is installed)', async () => {
    const path = await fileWith('');
    execFileSync('htpasswd', ['-bcB', '-C', '5', path, 'alice', 'alice-pw'], { stdio: 'ignore' });
    execFileSync('htpasswd', ['-bB', '-C', '4', path, 'bob', 'bob-pw'], { stdio: 'ignore' });
    const users = await load(path);
    expect(users.size).toBe(2);
    expect(await users.verify('alice', 'alice-pw')).toBe(true);
    expect(await users.verify('bob', 'bob-pw')).toBe(true);
    expect(await users.verify('bob', 'alice-pw')).toBe(false);
  });
});

describe('HtpasswdUsers.watch', () => {
  it('takes a new file renamed over the old one, without a restart', async () => {
    const path = await fileWith(`alice:${alice2b}\n`);
    const log = quietLog();
    const users = await load(path, log, { pollIntervalMs: 50 });
    users.watch();
    await replace(path, `alice:${alice2b}\nbob:${bob2y}\n`);
    await waitFor(() => users.has('bob'), { timeoutMs: 5000, what: 'the reload' });
    expect(users.generation).toBe(1);
    expect(await users.verify('bob', 'bob-pw')).toBe(true);
    expect(log.info).toHaveBeenCalledWith(expect.objectContaining({ path, users: 2, generation: 1 }), 'htpasswd file reloaded');

    // Written in place as well; and a removed user is gone.
    await writeFile(path, `bob:${bob2y}\n`);
    await waitFor(() => !users.has('alice'), { timeoutMs: 5000, what: 'the second reload' });
    expect(users.generation).toBe(2);
    expect(await users.verify('alice', 'alice-pw')).toBe(false);
  });

  it('refuses an invalid new version: the old users stay and the error is logged without hashes', async () => {
    const path = await fileWith(`alice:${alice2b}\n`);
    const log = quietLog();
    const users = await load(path, log, { pollIntervalMs: 50 });
    users.watch();
    const md5 = '$apr1$NwokjrfU$Of.mi.t2TnZlOCzjPuqFm1';
    await replace(path, `alice:${alice2b}\nmallory:${md5}\n`);
    await waitFor(() => log.error.mock.calls.length > 0, { timeoutMs: 5000, what: 'the refusal to be logged' });
    const [fields, message] = log.error.mock.calls[0]!;
    expect(message).toMatch(/refused/);
    expect(fields).toEqual(expect.objectContaining({ path, users: 1 }));
    const logged = JSON.stringify(log.error.mock.calls);
    expect(logged).toContain('line 2');
    expect(logged).toContain('mallory');
    expect(logged).not.toContain(md5);
    expect(logged).not.toContain(alice2b);
    expect(users.generation).toBe(0);
    expect(users.has('alice')).toBe(true);
    expect(users.has('mallory')).toBe(false);
    expect(await users.verify('alice', 'alice-pw')).toBe(true);

    // Once fixed, the file is taken again.
    await replace(path, `alice:${alice2b}\nmallory:${carol2a}\n`);
    await waitFor(() => users.has('mallory'), { timeoutMs: 5000, what: 'the fixed file' });
    expect(users.generation).toBe(1);
  });

  it('stops reading the file after close()', async () => {
    const path = await fileWith(`alice:${alice2b}\n`);
    const users = await load(path, quietLog(), { pollIntervalMs: 50 });
    users.watch();
    users.close();
    await replace(path, `bob:${bob2y}\n`);
    await new Promise((r) => setTimeout(r, 300));
    expect(users.has('alice')).toBe(true);
    expect(users.generation).toBe(0);
  });
});
