// Pure figures: medians, percentiles, which way a ratio points, and whether a target is met.

/** Whether a bigger or a smaller figure is the better one. */
export type Better = 'higher' | 'lower';

/** The median of the values (the mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * The p-th percentile (0..100) of values sorted ascending, nearest-rank: the smallest value
 * with at least p% of the values at or below it. NaN for none.
 */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/**
 * How many times better ours is than theirs: ours/theirs when higher is better, theirs/ours
 * when lower is better, so that above 1 always means ours is better. Undefined when either
 * figure is missing, not finite, or not positive.
 */
export function betterRatio(ours: number | undefined, theirs: number | undefined, better: Better): number | undefined {
  if (ours === undefined || theirs === undefined) return undefined;
  if (!Number.isFinite(ours) || !Number.isFinite(theirs) || ours <= 0 || theirs <= 0) return undefined;
  return better === 'higher' ? ours / theirs : theirs / ours;
}

/**
 * A goal for one figure:
 * - `ratio`: ours at least `min` times better than distribution (see betterRatio);
 * - `below`: ours strictly under `value` (an absolute figure in the metric's unit);
 * - `atLeast`: ours at or above `value`.
 */
export type Target = { kind: 'ratio'; min: number } | { kind: 'below'; value: number } | { kind: 'atLeast'; value: number };

export interface TargetResult {
  /** Undefined when it cannot be judged (no distribution to compare with, or no figure). */
  met: boolean | undefined;
  /** The target as shown in the table, e.g. "≥3×" or "<150". */
  text: string;
}

export function targetText(target: Target, unit = ''): string {
  const u = unit ? ` ${unit}` : '';
  switch (target.kind) {
    case 'ratio':
      return `≥${formatNumber(target.min)}×`;
    case 'below':
      return `<${formatNumber(target.value)}${u}`;
    case 'atLeast':
      return `≥${formatNumber(target.value)}${u}`;
  }
}

export function evaluateTarget(target: Target | undefined, ours: number | undefined, ratio: number | undefined, unit = ''): TargetResult {
  if (target === undefined) return { met: undefined, text: '' };
  const text = targetText(target, unit);
  const known = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x);
  switch (target.kind) {
    case 'ratio':
      return { met: known(ratio) ? ratio >= target.min : undefined, text };
    case 'below':
      return { met: known(ours) ? ours < target.value : undefined, text };
    case 'atLeast':
      return { met: known(ours) ? ours >= target.value : undefined, text };
  }
}

/** A number shown with about three significant figures (whole numbers from 100 on, with thousands separators). */
export function formatNumber(x: number | undefined): string {
  if (x === undefined || Number.isNaN(x)) return '—';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '-∞';
  const a = Math.abs(x);
  if (a >= 100) return Math.round(x).toLocaleString('en-US');
  if (a >= 10) return x.toFixed(1).replace(/\.0$/, '');
  if (a >= 1) return x.toFixed(2).replace(/\.?0+$/, '');
  if (a === 0) return '0';
  return x.toPrecision(2);
}

/** A size as written for people: 1 GiB, 16 MiB, 100 MB (exact units first). */
export function sizeText(bytes: number): string {
  for (const [unit, n] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
    ['GB', 1e9],
    ['MB', 1e6],
    ['kB', 1e3],
  ] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n} ${unit}`;
  }
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${bytes} B`;
}
