import { describe, expect, it } from 'vitest';
import { MAX_NODES, SHAPE_WORKLOADS, WORKLOAD_NAMES, parseArgs, parseSize } from '../../bench/args.js';
import { shapesOf } from '../../bench/shapes.js';

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
    expect(o).toMatchObject({ index: 'sqlite', nodes: 1, postgresUrl: undefined, listingCount: 10_000 });
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

  it('reads --index, --nodes and --postgres-url', () => {
    expect(parseArgs(['--index', 'postgres'])).toMatchObject({ index: 'postgres', nodes: 1 });
    expect(parseArgs(['--index=sqlite'])).toMatchObject({ index: 'sqlite', nodes: 1 });
    expect(parseArgs(['--nodes', '3', '--index', 'postgres'])).toMatchObject({ index: 'postgres', nodes: 3 });
    expect(parseArgs(['--postgres-url', 'postgres://u@127.0.0.1:5432/postgres'])).toMatchObject({ postgresUrl: 'postgres://u@127.0.0.1:5432/postgres' });
    expect(parseArgs([`--nodes=${MAX_NODES}`]).nodes).toBe(MAX_NODES);
    expect(parseArgs(['--listing-count', '2000']).listingCount).toBe(2000);
    expect(() => parseArgs(['--listing-count', '99'])).toThrow(/at least 100/);
  });

  it('makes several nodes imply the PostgreSQL index, which they need', () => {
    expect(parseArgs(['--nodes', '3'])).toMatchObject({ index: 'postgres', nodes: 3 });
    expect(parseArgs(['--nodes', '1'])).toMatchObject({ index: 'sqlite', nodes: 1 });
    expect(() => parseArgs(['--index', 'sqlite', '--nodes', '2'])).toThrow(/must be PostgreSQL/);
    expect(() => parseArgs(['--nodes', '2', '--index', 'sqlite'])).toThrow(/must be PostgreSQL/);
  });

  it('refuses bad --index, --nodes and --postgres-url values', () => {
    expect(() => parseArgs(['--index', 'mysql'])).toThrow(/--index: expected sqlite or postgres/);
    expect(() => parseArgs(['--index'])).toThrow(/needs a value/);
    expect(() => parseArgs(['--nodes', '0'])).toThrow(/whole number/);
    expect(() => parseArgs(['--nodes', 'three'])).toThrow(/whole number/);
    expect(() => parseArgs(['--nodes', String(MAX_NODES + 1)])).toThrow(/at most/);
    expect(() => parseArgs(['--postgres-url', '127.0.0.1:5432'])).toThrow(/postgres:\/\/ URL/);
  });
});

describe('shapesOf', () => {
  it('adds no shape without --index postgres or --nodes', () => {
    expect(shapesOf(parseArgs([]))).toEqual([]);
  });

  it('adds one node on a PostgreSQL index over the same filesystem store for --index postgres', () => {
    const shapes = shapesOf(parseArgs(['--index', 'postgres']));
    expect(shapes.map((s) => [s.kind, s.store, s.index, s.nodes, s.balancer])).toEqual([['pg', 'filesystem', 'postgres', 1, false]]);
  });

  it('adds, for --nodes N, s3rver with SQLite, with PostgreSQL, and the nodes behind haproxy', () => {
    // several nodes imply --index postgres, so the filesystem one with PostgreSQL comes first
    const shapes = shapesOf(parseArgs(['--nodes', '3']));
    expect(shapes.map((s) => [s.kind, s.store, s.index, s.nodes, s.balancer])).toEqual([
      ['pg', 'filesystem', 'postgres', 1, false],
      ['s3', 's3rver', 'sqlite', 1, false],
      ['s3pg', 's3rver', 'postgres', 1, false],
      ['nodes', 's3rver', 'postgres', 3, true],
    ]);
    expect(shapes.at(-1)).toMatchObject({ name: 'ours-3-nodes', column: '3 nodes' });
    expect(shapesOf(parseArgs(['--nodes', '3', '--index', 'postgres']))).toEqual(shapes);
    // unique names: each is a folder, a log and a JSON key
    const names = shapes.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it('runs in the shapes only workloads that ours and distribution share', () => {
    expect(SHAPE_WORKLOADS).toEqual(['push', 'chunked', 'pull', 'manifest', 'small', 'tags', 'catalog']);
    for (const w of SHAPE_WORKLOADS) expect(WORKLOAD_NAMES).toContain(w);
  });
});
