// The printed table and the saved JSON.
import type { Options } from './args.js';
import type { Limits, MachineInfo } from './machine.js';
import { isOursOnly, type MetricSummary } from './metrics.js';
import { formatNumber } from './stats.js';

export interface TableOptions {
  /** Whether distribution was measured at all. */
  withDistribution: boolean;
}

function metText(s: MetricSummary, withDistribution: boolean): string {
  if (s.failed) return 'FAILED';
  if (s.targetText === '') return '';
  if (s.met === undefined) return s.def.target?.kind === 'ratio' && !withDistribution && s.def.baseline === undefined ? 'n/a' : '—';
  return s.met ? 'yes' : 'NO';
}

function cell(s: MetricSummary, kind: 'ours' | 'distribution'): string {
  if (s.failed) return 'failed';
  const v = s.median[kind];
  return v === undefined ? '—' : formatNumber(v);
}

/** Rows of the table: workload, unit, ours, distribution, × better, target, met. */
export function tableRows(summaries: readonly MetricSummary[], options: TableOptions): string[][] {
  const rows: string[][] = [['workload', 'unit', 'ours', 'distribution', '× better', 'target', 'met']];
  for (const s of summaries) {
    if (isOursOnly(s.def)) continue;
    const measured = s.samples.ours !== undefined || s.samples.distribution !== undefined || s.failed;
    if (!measured) continue;
    const ratio = s.failed || s.def.noRatio || s.ratio === undefined ? '—' : `${formatNumber(s.ratio)}×`;
    rows.push([
      s.def.label,
      s.def.unit,
      cell(s, 'ours'),
      options.withDistribution ? cell(s, 'distribution') : '—',
      ratio,
      s.targetText,
      metText(s, options.withDistribution),
    ]);
  }
  return rows;
}

/**
 * Rows of the ours-only A/B table: workload, unit, this configuration's figure, its baseline's,
 * the ratio (below 1: worse than the baseline), target, met. Empty (no header) when none was measured.
 */
export function abTableRows(summaries: readonly MetricSummary[]): string[][] {
  const rows: string[][] = [];
  for (const s of summaries) {
    if (!isOursOnly(s.def)) continue;
    if (s.samples.ours === undefined && !s.failed) continue;
    const ratio = s.failed || s.def.baseline === undefined || s.ratio === undefined ? '—' : `${formatNumber(s.ratio)}×`;
    const baseline = s.def.baseline === undefined ? '' : s.failed ? 'failed' : formatNumber(s.baselineMedian);
    rows.push([s.def.label, s.def.unit, cell(s, 'ours'), baseline, ratio, s.targetText, metText(s, false)]);
  }
  return rows.length === 0 ? [] : [['ours-only A/B (ours vs ours)', 'unit', 'figure', 'baseline', '× baseline', 'target', 'met'], ...rows];
}

/** Columns padded to their widest cell; numbers (and the ratio) right-aligned. */
export function renderTable(rows: readonly string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  const right = new Set([2, 3, 4]);
  const line = (row: readonly string[]) =>
    row
      .map((c, i) => {
        const pad = ' '.repeat(widths[i]! - [...c].length);
        return right.has(i) ? pad + c : c + pad;
      })
      .join('  ')
      .trimEnd();
  const [head, ...body] = rows;
  if (!head) return '';
  const rule = widths.map((w) => '─'.repeat(w)).join('  ');
  return [line(head), rule, ...body.map(line)].join('\n');
}

export function renderNotes(summaries: readonly MetricSummary[]): string[] {
  const lines: string[] = [];
  for (const s of summaries) for (const n of s.notes) lines.push(`- ${s.def.label}: ${n}`);
  return lines;
}

export function renderMachine(info: MachineInfo, limits: Limits | undefined, push: MetricSummary | undefined): string[] {
  const lines = [
    `machine: ${info.cpuModel}, ${info.cores} cores, ${info.memoryGiB} GiB, kernel ${info.kernel}, node ${info.node}`,
    `distribution: ${info.distribution ?? 'not installed (docker-registry not on PATH)'}`,
    `ours: commit ${info.commit ?? 'unknown'}`,
  ];
  if (limits) {
    const floor = Math.min(limits.sha256MBps, limits.diskWriteMBps);
    lines.push(
      `limits (${formatNumber(limits.bytes / 1024 ** 2)} MiB): SHA-256 one core ${formatNumber(limits.sha256MBps)} MB/s; ` +
        `disk write+fsync ${formatNumber(limits.diskWriteMBps)} MB/s; min ${formatNumber(floor)} MB/s`,
    );
    if (push) {
      const parts: string[] = [];
      for (const kind of ['ours', 'distribution'] as const) {
        const v = push.median[kind];
        if (v !== undefined) parts.push(`${kind} ${formatNumber(v)} MB/s = ${formatNumber((100 * v) / floor)}%`);
      }
      if (parts.length > 0) lines.push(`monolithic push vs that minimum: ${parts.join('; ')}`);
    }
  }
  return lines;
}

export interface JsonReport {
  tool: 'ocireg bench';
  startedAt: string;
  finishedAt: string;
  durationSec: number;
  machine: MachineInfo;
  limits: Limits | undefined;
  options: Options;
  servers: Record<string, { config: unknown; logFile: string; version?: string | undefined }>;
  skipped: Record<string, string>;
  failures: Record<string, string>;
  metrics: Array<{
    id: string;
    workload: string;
    label: string;
    unit: string;
    better: string;
    once: boolean;
    target: unknown;
    targetText: string;
    samples: MetricSummary['samples'];
    median: MetricSummary['median'];
    ratioOursBetter: number | null;
    /** Ours-only A/B figures: the metric compared with, and its median (ratioOursBetter is then this over that). */
    baseline: string | null;
    baselineMedian: number | null;
    met: boolean | null;
    failed: boolean;
    notes: string[];
    details: Partial<Record<string, unknown[]>>;
  }>;
  /** Which server went first in each repetition; for the ours-only A/B workloads, the order of their own servers. */
  repetitions: Array<{ rep: number; order: string[]; workloads?: Record<string, string[]> }>;
}

export function metricsJson(
  summaries: readonly MetricSummary[],
  details: (id: string) => Partial<Record<string, unknown[]>> = () => ({}),
): JsonReport['metrics'] {
  return summaries.map((s) => ({
    id: s.def.id,
    workload: s.def.workload,
    label: s.def.label,
    unit: s.def.unit,
    better: s.def.better,
    once: s.def.once ?? false,
    target: s.def.target ?? null,
    targetText: s.targetText,
    samples: s.samples,
    median: s.median,
    ratioOursBetter: s.def.noRatio ? null : (s.ratio ?? null),
    baseline: s.def.baseline ?? null,
    baselineMedian: s.baselineMedian ?? null,
    met: s.met ?? null,
    failed: s.failed,
    notes: s.notes,
    details: details(s.def.id),
  }));
}

/** A timestamp usable as a file name: ISO 8601 with the colons of the time replaced. */
export function fileTimestamp(date: Date): string {
  return date.toISOString().replace(/:/g, '-');
}
