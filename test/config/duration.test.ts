import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/config/duration.js';

describe('parseDuration', () => {
  it.each([
    ['24h', 86_400_000],
    ['168h', 604_800_000],
    ['1h30m', 5_400_000],
    ['2m30s', 150_000],
    ['500ms', 500],
    ['1.5s', 1500],
    ['10s', 10_000],
    ['1500us', 1.5],
    ['1500µs', 1.5],
    ['2000000ns', 2],
    ['0', 0],
    ['0s', 0],
    [' 5m ', 300_000],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ['the empty string', ''],
    ['a number without unit', '10'],
    ['a unit without number', 'h'],
    ['an unknown unit', '1d'],
    ['an upper-case unit', '1H'],
    ['a negative duration', '-1h'],
    ['a space between parts', '1h 30m'],
    ['a trailing number', '1h30'],
    ['trailing text', '10s later'],
    ['leading text', 'in 10s'],
    ['00', '00'],
  ])('rejects %s', (_label, text) => {
    expect(() => parseDuration(text)).toThrow(/invalid duration/);
  });
});
