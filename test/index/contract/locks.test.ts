import { expect, it } from 'vitest';
import { LockTimeoutError, type Index, type IndexLocks } from '../../../src/index/contract.js';
import { withAdmin } from '../../support/postgres.js';
import { describeIndex } from './implementations.js';
import { eventually, gate, sleep } from './fixtures.js';

/** Settles within `ms` or fails the test (a lock that never comes back must not hang the suite). */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describeIndex('IndexLocks', (fixture) => {
  const locks = (): IndexLocks => fixture().index.locks;

  it('run returns what the section returns, and throws what it throws', async () => {
    expect(await locks().run('job', async () => 42)).toBe(42);
    await expect(locks().run('job', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    // The failed section let go of the lock.
    expect(await within(5_000, 'run after a failure', locks().run('job', async () => 'again'))).toBe('again');
  });

  it('run serialises the sections of one name', async () => {
    const events: string[] = [];
    const first = gate();
    const a = locks().run('same', async () => {
      events.push('a in');
      await first.promise;
      events.push('a out');
      return 'a';
    });
    await sleep(50);
    const b = locks().run('same', async () => {
      events.push('b in');
      return 'b';
    });
    await sleep(200);
    expect(events).toEqual(['a in']);
    first.open();
    expect(await within(5_000, 'both sections', Promise.all([a, b]))).toEqual(['a', 'b']);
    expect(events).toEqual(['a in', 'a out', 'b in']);
  });

  it('run does not serialise sections of two names', async () => {
    const held = gate();
    let bRan = false;
    const a = locks().run('one', () => held.promise);
    await sleep(50);
    const b = await within(5_000, 'a second name', locks().run('two', async () => ((bRan = true), 'b')));
    expect(b).toBe('b');
    expect(bRan).toBe(true);
    held.open();
    await a;
  });

  it('many waiters each get the lock in turn, one at a time', async () => {
    let inside = 0;
    let most = 0;
    const order: number[] = [];
    const runs = Array.from({ length: 8 }, (_, i) =>
      locks().run('queue', async () => {
        inside++;
        most = Math.max(most, inside);
        await sleep(5);
        order.push(i);
        inside--;
      }),
    );
    await within(15_000, 'eight sections', Promise.all(runs));
    expect(most).toBe(1);
    expect([...order].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('tryRun runs a section when the lock is free, and refuses while it is held', async () => {
    expect(await locks().tryRun('job', async () => 'ran')).toEqual({ ran: true, value: 'ran' });
    const held = gate();
    const holder = locks().run('job', () => held.promise);
    await sleep(50);
    let called = false;
    expect(await locks().tryRun('job', async () => ((called = true), 'no'))).toEqual({ ran: false });
    expect(called).toBe(false);
    // Another name is free.
    expect(await locks().tryRun('other', async () => 1)).toEqual({ ran: true, value: 1 });
    held.open();
    await holder;
    expect(await locks().tryRun('job', async () => 'later')).toEqual({ ran: true, value: 'later' });
  });

  it('a tryRun section holds the lock against run and tryRun, and lets go when it throws', async () => {
    const held = gate();
    const trying = locks().tryRun('job', () => held.promise.then(() => 'done'));
    await sleep(50);
    expect(await locks().tryRun('job', async () => 'no')).toEqual({ ran: false });
    await expect(locks().run('job', async () => 'no', 100)).rejects.toBeInstanceOf(LockTimeoutError);
    held.open();
    expect(await trying).toEqual({ ran: true, value: 'done' });
    // The run that gave up leaves the queue a moment after the holder (SQLite's in-process locks).
    await sleep(20);

    await expect(locks().tryRun('job', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await locks().tryRun('job', async () => 'free')).toEqual({ ran: true, value: 'free' });
  });

  it('run gives up after waitMs with LockTimeoutError, and that section never runs', async () => {
    const held = gate();
    const holder = locks().run('slow', () => held.promise.then(() => 'held'));
    await sleep(50);
    let ran = false;
    const started = Date.now();
    const error = await locks()
      .run('slow', async () => {
        ran = true;
      }, 150)
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    const waited = Date.now() - started;
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect((error as LockTimeoutError).lock).toBe('slow');
    expect(waited).toBeGreaterThanOrEqual(100);
    expect(waited).toBeLessThan(5_000);

    held.open();
    expect(await holder).toBe('held');
    // The lock is free again, and the abandoned section did not run when it freed.
    expect(await within(5_000, 'run after the timeout', locks().run('slow', async () => 'next', 5_000))).toBe('next');
    await sleep(100);
    expect(ran).toBe(false);
  });

  it('names with any characters are distinct locks', async () => {
    const names = ['gc', 'GC', 'purge-uploads', 'lifecycle:team/app', 'lifecycle:team/app2', 'é'];
    const held = names.map(() => gate());
    const holders = names.map((name, i) => locks().run(name, () => held[i]!.promise));
    await sleep(50);
    for (const name of names) expect(await locks().tryRun(name, async () => 1), name).toEqual({ ran: false });
    expect(await locks().tryRun('lifecycle:team/app3', async () => 1)).toEqual({ ran: true, value: 1 });
    for (const g of held) g.open();
    await Promise.all(holders);
  });
});

describeIndex(
  'IndexLocks across nodes',
  (fixture) => {
    /** Waits (bounded) until `locks` can take `name`. */
    const takes = (locks: IndexLocks, name: string, timeoutMs = 5_000) =>
      eventually(async () => (await locks.tryRun(name, async () => true)).ran, timeoutMs, 50);

    it('a lock held through one node is refused to another, and free once the first lets go', async () => {
      const one = fixture().index;
      const two = await fixture().another();
      const held = gate();
      const holder = one.locks.run('gc', () => held.promise.then(() => 'one'));
      await sleep(100);
      expect(await two.locks.tryRun('gc', async () => 'two')).toEqual({ ran: false });
      await expect(two.locks.run('gc', async () => 'two', 200)).rejects.toBeInstanceOf(LockTimeoutError);
      // Other names are free on both.
      expect(await two.locks.tryRun('purge', async () => 'two')).toEqual({ ran: true, value: 'two' });
      held.open();
      expect(await holder).toBe('one');
      expect(await two.locks.tryRun('gc', async () => 'two')).toEqual({ ran: true, value: 'two' });
      // And the other way round.
      const held2 = gate();
      const holder2 = two.locks.run('gc', () => held2.promise);
      await sleep(100);
      expect(await one.locks.tryRun('gc', async () => 'one')).toEqual({ ran: false });
      held2.open();
      await holder2;
    });

    it('run on one node waits for the other node\'s section and then runs', async () => {
      const one = fixture().index;
      const two = await fixture().another();
      const events: string[] = [];
      const held = gate();
      const a = one.locks.run('job', async () => {
        events.push('one in');
        await held.promise;
        events.push('one out');
      });
      await sleep(100);
      const b = two.locks.run(
        'job',
        async () => {
          events.push('two in');
        },
        10_000,
      );
      await sleep(300);
      expect(events).toEqual(['one in']);
      held.open();
      await within(10_000, 'both nodes', Promise.all([a, b]));
      expect(events).toEqual(['one in', 'one out', 'two in']);
    });

    it('after the node holding a lock is closed, another node gets it', async () => {
      const one = await fixture().another();
      const two = await fixture().another();
      const held = gate();
      const holder = one.locks.run('lease', () => held.promise).catch(() => undefined);
      await sleep(100);
      expect(await two.locks.tryRun('lease', async () => 1)).toEqual({ ran: false });
      const closing = one.close().catch(() => undefined);
      const took = await takes(two.locks, 'lease');
      held.open();
      await within(15_000, 'closing the first node', closing);
      await within(5_000, 'the first node\'s section', holder);
      expect(took, 'the lock of a closed node was not released while its section was still running').toBe(true);
    });

    it('after the node holding a lock dies (its connection is cut), another node gets it', async () => {
      const { database } = fixture();
      const one = await fixture().another();
      const two = await fixture().another();
      const held = gate();
      let lostSignal: AbortSignal | undefined;
      const holder = one.locks
        .run('lease', (lost) => {
          lostSignal = lost;
          return held.promise;
        })
        .then(
          () => 'resolved',
          () => 'rejected',
        );
      await sleep(100);
      expect(await two.locks.tryRun('lease', async () => 1)).toEqual({ ran: false });
      expect(lostSignal?.aborted).toBe(false);
      // Cut every connection of this database that holds an advisory lock: the first node's.
      const cut = await withAdmin(database!.url, async (client) => {
        const result = await client.query<{ pid: number }>(
          `SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()`,
        );
        for (const { pid } of result.rows) await client.query('SELECT pg_terminate_backend($1)', [pid]);
        return result.rows.length;
      });
      expect(cut).toBeGreaterThan(0);
      expect(await takes(two.locks, 'lease'), 'the dead node\'s lock was not released').toBe(true);
      // The section still running on the first node has been told that its lock is gone.
      expect(await eventually(() => lostSignal?.aborted === true, 5_000, 20)).toBe(true);
      held.open();
      // The first node notices; whether its run then resolves or rejects, the process goes on.
      expect(['resolved', 'rejected']).toContain(await within(10_000, 'the dead node\'s section', holder));
      // And the first node can take locks again (a new connection).
      expect(await within(10_000, 'the first node again', eventually(async () => (await one.locks.tryRun('other', async () => true)).ran, 5_000, 100))).toBe(true);
    });

    it('a lock waited for through one node is not taken by a section that gave up', async () => {
      const one = fixture().index;
      const two: Index = await fixture().another();
      const held = gate();
      const holder = one.locks.run('slow', () => held.promise);
      await sleep(100);
      let ran = false;
      await expect(
        two.locks.run('slow', async () => {
          ran = true;
        }, 200),
      ).rejects.toBeInstanceOf(LockTimeoutError);
      held.open();
      await holder;
      await sleep(300);
      expect(ran).toBe(false);
      // Neither node is left holding it.
      expect(await one.locks.tryRun('slow', async () => 1)).toEqual({ ran: true, value: 1 });
      expect(await two.locks.tryRun('slow', async () => 2)).toEqual({ ran: true, value: 2 });
    });
  },
  (impl) => impl.shared,
);
