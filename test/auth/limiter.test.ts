import { describe, expect, it } from 'vitest';
import { Limiter } from '../../src/auth/limiter.js';

describe('Limiter', () => {
  it('runs at most `limit` tasks at once, the rest in order, and frees a slot when a task fails', async () => {
    const limiter = new Limiter(2);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const task = (i: number) =>
      limiter.run(async () => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        order.push(i);
        if (i === 1) throw new Error('boom');
        return i;
      });
    const results = await Promise.allSettled([0, 1, 2, 3, 4, 5].map(task));
    expect(most).toBe(2);
    expect(results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<number>).value)).toEqual([0, 2, 3, 4, 5]);
    expect(order.slice(2)).toEqual([2, 3, 4, 5]);
    expect(limiter.pending).toBe(0);
  });
});
