// The printed table and the saved JSON.
import type { Options } from './args.js';
import type { Limits, MachineInfo } from './machine.js';
import { isOursOnly, type MetricSummary } from './metrics.js';
import type { ShapeSpec } from './shapes.js';
import { betterRatio, formatNumber, median } from './stats.js';

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

/**
 * A shape's figure relative to the plain single node of ours (shape/ours for higher-is-better
 * figures, ours/shape for lower-is-better: below 1 means the shape is worse).
 */
export function shapeRatio(s: MetricSummary, shape: ShapeSpec): number | undefined {
  if (s.failed) return undefined;
  return betterRatio(s.median[shape.kind], s.median.ours, s.def.better);
}

/**
 * Rows of the shapes table (--index postgres, --nodes N): workload, unit, the plain node's
 * figure, then each shape's figure and its ratio to the plain node. Empty when no shape was measured.
 */
export function shapeTableRows(summaries: readonly MetricSummary[], shapes: readonly ShapeSpec[]): string[][] {
  if (shapes.length === 0) return [];
  const rows: string[][] = [];
  for (const s of summaries) {
    if (isOursOnly(s.def)) continue;
    if (!shapes.some((sh) => s.samples[sh.kind] !== undefined) && !s.failed) continue;
    const row = [s.def.label, s.def.unit, cell(s, 'ours')];
    for (const sh of shapes) {
      const r = shapeRatio(s, sh);
      row.push(s.failed ? 'failed' : s.median[sh.kind] === undefined ? '—' : formatNumber(s.median[sh.kind]!), s.def.noRatio || r === undefined ? '—' : `${formatNumber(r)}×`);
    }
    rows.push(row);
  }
  if (rows.length === 0) return [];
  return [['ours in other shapes', 'unit', 'ours', ...shapes.flatMap((sh) => [sh.column, '× ours'])], ...rows];
}

/** Columns padded to their widest cell; numbers (and the ratio) right-aligned: columns 2 to 4, or from `rightFrom` on. */
export function renderTable(rows: readonly string[][], rightFrom?: number): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  const right = rightFrom === undefined ? new Set([2, 3, 4]) : new Set(widths.map((_, i) => i).filter((i) => i >= rightFrom));
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
  /** index, nodes and postgresUrl only when --index postgres or --nodes N was used; listingCount when it was changed. */
  options: Omit<Options, 'index' | 'nodes' | 'postgresUrl' | 'listingCount'> & Partial<Pick<Options, 'index' | 'nodes' | 'postgresUrl' | 'listingCount'>>;
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
  repetitions: Array<{ rep: number; order: string[]; workloads?: Record<string, string[]>; shapes?: string[] }>;
  /** With --index postgres or --nodes N: the other shapes of ours, their ratios to the plain node, CPU and memory. */
  shapes?: {
    list: Array<ShapeSpec & Record<string, unknown>>;
    /** metric id → shape kind → ratio to the plain node (below 1: worse). */
    ratios: Record<string, Record<string, number | null>>;
    /** Per workload, repetition and server: wall time, cores busy on the machine, CPU seconds per role. */
    cpu: Array<{ workload: string; rep: number; server: string; wallSec: number; machineCores: number; irqCores: number; seconds: Record<string, number> }>;
    /** Resident memory after the repetitions, MiB, per server and process. */
    memory: Record<string, Array<{ role: string; pid: number; rssMiB: number | null }>>;
  };
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

export type CpuRecord = NonNullable<JsonReport['shapes']>['cpu'][number];

const CPU_ROLES = ['node', 'postgres', 's3rver', 'haproxy', 'client'] as const;

/**
 * Rows of the CPU table: per workload and server, medians over the repetitions of the wall time,
 * the cores busy on the whole machine, and the cores each role kept busy (CPU seconds over wall
 * seconds), the interrupts' and softirqs' (loopback networking); "other" is the machine's rest
 * (PostgreSQL's own background processes, anything else running on the machine).
 */
export function cpuTableRows(records: readonly CpuRecord[], labelOf: (server: string) => string): string[][] {
  const groups = new Map<string, CpuRecord[]>();
  for (const r of records) {
    const key = `${r.workload}\0${r.server}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  if (groups.size === 0) return [];
  const med = median;
  const rows: string[][] = [['cores busy (CPU s / wall s)', 'server', 'wall s', 'machine', ...CPU_ROLES, 'irq', 'other']];
  for (const list of groups.values()) {
    const first = list[0]!;
    const cores = (role: string) => med(list.map((r) => (r.wallSec > 0 ? (r.seconds[role] ?? 0) / r.wallSec : 0)));
    const machine = med(list.map((r) => r.machineCores));
    const parts = CPU_ROLES.map((role) => cores(role));
    const irq = med(list.map((r) => r.irqCores));
    const other = Math.max(0, machine - irq - parts.reduce((a, b) => a + b, 0));
    rows.push([
      first.workload,
      labelOf(first.server),
      formatNumber(med(list.map((r) => r.wallSec))),
      formatNumber(machine),
      ...parts.map((v, i) => (v === 0 && !list.some((r) => CPU_ROLES[i]! in r.seconds) ? '—' : formatNumber(v))),
      formatNumber(irq),
      formatNumber(other),
    ]);
  }
  return rows;
}
