import { describe, expect, it } from 'vitest';
import { WORKLOAD_NAMES, parseArgs, parseSize } from '../../bench/args.js';

describe('parseSize', () => {
  it('reads binary and decimal units', () => {
    expect(parseSize('64MiB')).toBe(64 * 1024 ** 2);
    expect(parseSize('1GiB')).toBe(1024 ** 3);
    expect(parseSize('1g')).toBe(1024 ** 3);
    expect(parseSize('500MB')).toBe(500_000_000);
    expect(parseSize('4 KiB')).toBe(4096);
    expect(parseSize('1.5MiB')).toBe(1.5 * 1024 ** 2);
    expect(parseSize('12345')).toBe(12345);
  });

  it('refuses what is not a size', () => {
    expect(() => parseSize('big')).toThrow(/not a size/);
    expect(() => parseSize('10 parsecs')).toThrow(/not a size/);
    expect(() => parseSize('0')).toThrow(/positive/);
  });
});

describe('parseArgs', () => {
  it('has the documented defaults', () => {
    const o = parseArgs([]);
    expect(o).toMatchObject({ reps: 3, size: 1024 ** 3, logLevel: 'info', duration: 5, load: 'auto', keep: false, dir: undefined });
    expect(o.only).toEqual([...WORKLOAD_NAMES]);
  });

  it('reads options in both --name value and --name=value forms', () => {
    const o = parseArgs(['--reps', '5', '--size=64MiB', '--only', 'pull,push', '--keep', '--log-level=debug', '--dir', '/d', '--load', 'node']);
    expect(o).toMatchObject({ reps: 5, size: 64 * 1024 ** 2, keep: true, logLevel: 'debug', dir: '/d', load: 'node' });
    // in the bench's own order, whatever order they were given in
    expect(o.only).toEqual(['push', 'pull']);
  });

  it('refuses unknown workloads, options and bad values', () => {
    expect(() => parseArgs(['--only', 'push,nope'])).toThrow(/unknown workload nope/);
    expect(() => parseArgs(['--fast'])).toThrow(/unknown argument/);
    expect(() => parseArgs(['--reps', '0'])).toThrow(/whole number/);
    expect(() => parseArgs(['--reps'])).toThrow(/needs a value/);
    expect(() => parseArgs(['--log-level', 'loud'])).toThrow(/log-level/);
  });
});
