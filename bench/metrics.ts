// The figures the bench reports, and the samples collected for them.
import type { WorkloadName } from './args.js';
import type { ServerKind } from './servers.js';
import { betterRatio, evaluateTarget, median, type Better, type Target } from './stats.js';

export interface MetricDef {
  id: string;
  workload: WorkloadName;
  label: string;
  unit: string;
  better: Better;
  target?: Target;
  /** Measured once per server (setup), not per repetition. */
  once?: boolean;
  /** No ours/theirs ratio is shown (it would repeat another row's). */
  noRatio?: boolean;
  /**
   * An ours-only A/B figure: the id of the metric (of ours, same workload and unit) it is compared
   * with, instead of distribution. Its ratio is this one's over the baseline's (baseline's over
   * this one's when lower is better), so that below 1 means this configuration is worse.
   */
  baseline?: string;
  /** Measured on configurations of ours only (an A/B workload): shown in its own table. Implied by `baseline`. */
  oursOnly?: boolean;
}

/** Whether a metric belongs to an ours-only A/B workload. */
export function isOursOnly(def: MetricDef): boolean {
  return def.oursOnly === true || def.baseline !== undefined;
}

export interface MetricSummary {
  def: MetricDef;
  samples: Partial<Record<ServerKind, number[]>>;
  median: Partial<Record<ServerKind, number>>;
  /** How many times better ours is (>1: ours better), when both were measured; for an A/B figure, than its baseline. */
  ratio: number | undefined;
  /** For an A/B figure (def.baseline), the baseline's median. */
  baselineMedian: number | undefined;
  met: boolean | undefined;
  targetText: string;
  notes: string[];
  failed: boolean;
}

/** Samples per metric and server, notes per metric, and which workloads broke. */
export class Results {
  private readonly samples = new Map<string, Partial<Record<ServerKind, number[]>>>();
  private readonly notes = new Map<string, string[]>();
  private readonly noteKeys = new Map<string, string>();
  private readonly details = new Map<string, Partial<Record<ServerKind, unknown[]>>>();
  readonly failures = new Map<WorkloadName, string>();

  constructor(readonly defs: readonly MetricDef[]) {}

  def(id: string): MetricDef {
    const d = this.defs.find((m) => m.id === id);
    if (!d) throw new Error(`unknown metric ${id}`);
    return d;
  }

  record(id: string, server: ServerKind, value: number): void {
    this.def(id);
    if (!Number.isFinite(value)) throw new Error(`${id} (${server}): not a finite figure: ${value}`);
    const perServer = this.samples.get(id) ?? {};
    (perServer[server] ??= []).push(value);
    this.samples.set(id, perServer);
  }

  /** Raw detail of one measurement (e.g. each request's latency), kept in the JSON only. */
  detail(id: string, server: ServerKind, data: Record<string, unknown>): void {
    this.def(id);
    const perServer = this.details.get(id) ?? {};
    (perServer[server] ??= []).push(data);
    this.details.set(id, perServer);
  }

  detailsOf(id: string): Partial<Record<ServerKind, unknown[]>> {
    return this.details.get(id) ?? {};
  }

  /**
   * A remark shown under the table for this metric (each distinct text once). A note given a
   * `key` replaces the earlier note of the same key, so that it can be rewritten as samples come in.
   */
  note(id: string, text: string, key?: string): void {
    const list = this.notes.get(id) ?? [];
    const previous = key === undefined ? undefined : this.noteKeys.get(`${id}\0${key}`);
    const at = previous === undefined ? -1 : list.indexOf(previous);
    if (at >= 0) list.splice(at, 1, text);
    else if (!list.includes(text)) list.push(text);
    if (key !== undefined) this.noteKeys.set(`${id}\0${key}`, text);
    this.notes.set(id, list);
  }

  fail(workload: WorkloadName, message: string): void {
    if (!this.failures.has(workload)) this.failures.set(workload, message);
  }

  summary(id: string): MetricSummary {
    const def = this.def(id);
    const samples = this.samples.get(id) ?? {};
    const med: Partial<Record<ServerKind, number>> = {};
    // ours and distribution first, as they have always come; then ours's other shapes, if any
    const kinds = [...new Set<ServerKind>(['ours', 'distribution', ...(Object.keys(samples) as ServerKind[])])];
    for (const kind of kinds) {
      const s = samples[kind];
      if (s && s.length > 0) med[kind] = median(s);
    }
    const failed = this.failures.has(def.workload);
    const versus = def.baseline === undefined ? med.distribution : this.oursMedian(def.baseline);
    const ratio = failed ? undefined : betterRatio(med.ours, versus, def.better);
    const target = evaluateTarget(def.target, failed ? undefined : med.ours, ratio, def.target?.kind === 'ratio' ? '' : def.unit);
    const baselineMedian = def.baseline === undefined ? undefined : versus;
    return { def, samples, median: med, ratio, baselineMedian, met: target.met, targetText: target.text, notes: this.notes.get(id) ?? [], failed };
  }

  /** The median of ours for a metric, or undefined. */
  private oursMedian(id: string): number | undefined {
    this.def(id);
    const s = this.samples.get(id)?.ours;
    return s && s.length > 0 ? median(s) : undefined;
  }

  summaries(): MetricSummary[] {
    return this.defs.map((d) => this.summary(d.id));
  }
}
