import { describe, expect, it } from 'vitest';
import { betterRatio, evaluateTarget, formatNumber, median, percentileSorted, sizeText, targetText } from '../../bench/stats.js';

describe('median', () => {
  it('takes the middle value of an odd count, whatever the order', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([7])).toBe(7);
  });

  it('averages the middle two of an even count', () => {
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it('is NaN for no values and does not reorder its input', () => {
    expect(median([])).toBeNaN();
    const values = [3, 1, 2];
    median(values);
    expect(values).toEqual([3, 1, 2]);
  });
});

describe('percentileSorted', () => {
  it('is nearest-rank', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentileSorted(sorted, 99)).toBe(99);
    expect(percentileSorted(sorted, 50)).toBe(50);
    expect(percentileSorted(sorted, 100)).toBe(100);
    expect(percentileSorted([1, 2, 3], 99)).toBe(3);
    expect(percentileSorted(Float64Array.from([0.5]), 99)).toBe(0.5);
    expect(percentileSorted([], 99)).toBeNaN();
  });
});

describe('betterRatio', () => {
  it('is ours/theirs when higher is better', () => {
    expect(betterRatio(300, 100, 'higher')).toBe(3);
    expect(betterRatio(50, 100, 'higher')).toBe(0.5);
  });

  it('is theirs/ours when lower is better, so above 1 still means ours is better', () => {
    expect(betterRatio(10, 100, 'lower')).toBe(10);
    expect(betterRatio(200, 100, 'lower')).toBe(0.5);
  });

  it('is undefined without both figures, or with a zero or non-finite one', () => {
    expect(betterRatio(1, undefined, 'higher')).toBeUndefined();
    expect(betterRatio(undefined, 1, 'lower')).toBeUndefined();
    expect(betterRatio(0, 1, 'lower')).toBeUndefined();
    expect(betterRatio(1, Number.NaN, 'higher')).toBeUndefined();
  });
});

describe('evaluateTarget', () => {
  it('judges ratio targets on the ratio, inclusive', () => {
    expect(evaluateTarget({ kind: 'ratio', min: 3 }, 900, 3)).toEqual({ met: true, text: '≥3×' });
    expect(evaluateTarget({ kind: 'ratio', min: 1.5 }, 100, 1.49)).toEqual({ met: false, text: '≥1.5×' });
  });

  it('cannot judge a ratio target without distribution', () => {
    expect(evaluateTarget({ kind: 'ratio', min: 2 }, 100, undefined).met).toBeUndefined();
  });

  it('judges absolute targets on our figure alone', () => {
    expect(evaluateTarget({ kind: 'below', value: 150 }, 149.9, undefined, 'MiB')).toEqual({ met: true, text: '<150 MiB' });
    expect(evaluateTarget({ kind: 'below', value: 150 }, 150, 2).met).toBe(false);
    expect(evaluateTarget({ kind: 'atLeast', value: 70 }, 70, undefined, '%')).toEqual({ met: true, text: '≥70 %' });
    expect(evaluateTarget({ kind: 'atLeast', value: 70 }, 69, 5).met).toBe(false);
    expect(evaluateTarget({ kind: 'atLeast', value: 70 }, undefined, 5).met).toBeUndefined();
  });

  it('has nothing to say without a target', () => {
    expect(evaluateTarget(undefined, 1, 1)).toEqual({ met: undefined, text: '' });
  });

  it('writes targets as shown in the table', () => {
    expect(targetText({ kind: 'ratio', min: 10 })).toBe('≥10×');
    expect(targetText({ kind: 'below', value: 150 }, 'MiB')).toBe('<150 MiB');
  });
});

describe('formatNumber', () => {
  it('keeps about three significant figures', () => {
    expect(formatNumber(12345.6)).toBe('12,346');
    expect(formatNumber(123.4)).toBe('123');
    expect(formatNumber(12.34)).toBe('12.3');
    expect(formatNumber(12.04)).toBe('12');
    expect(formatNumber(1.234)).toBe('1.23');
    expect(formatNumber(1.5)).toBe('1.5');
    expect(formatNumber(0.0123)).toBe('0.012');
    expect(formatNumber(0)).toBe('0');
    expect(formatNumber(undefined)).toBe('—');
    expect(formatNumber(Number.NaN)).toBe('—');
  });
});

describe('sizeText', () => {
  it('names exact binary, then decimal, units', () => {
    expect(sizeText(1024 ** 3)).toBe('1 GiB');
    expect(sizeText(16 * 1024 ** 2)).toBe('16 MiB');
    expect(sizeText(4096)).toBe('4 KiB');
    expect(sizeText(100_000_000)).toBe('100 MB');
    expect(sizeText(1_500_001)).toBe('1.4 MiB');
    expect(sizeText(10)).toBe('10 B');
  });
});
