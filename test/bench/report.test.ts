import { describe, expect, it } from 'vitest';
import { parseProcStatus } from '../../bench/memory.js';
import { Results, type MetricDef } from '../../bench/metrics.js';
import { fileTimestamp, metricsJson, renderTable, tableRows } from '../../bench/report.js';

const defs: MetricDef[] = [
  { id: 'rps', workload: 'manifest', label: 'manifest GET', unit: 'req/s', better: 'higher', target: { kind: 'ratio', min: 3 } },
  { id: 'lat', workload: 'tags', label: 'tag list', unit: 'ms', better: 'lower', target: { kind: 'ratio', min: 10 } },
  { id: 'mem', workload: 'push', label: 'peak RSS', unit: 'MiB', better: 'lower', target: { kind: 'below', value: 150 } },
  { id: 'unmeasured', workload: 'small', label: 'never run', unit: 'x', better: 'higher' },
];

function sample(): Results {
  const r = new Results(defs);
  for (const [ours, theirs] of [
    [900, 200],
    [1000, 250],
    [1100, 300],
  ] as const) {
    r.record('rps', 'ours', ours);
    r.record('rps', 'distribution', theirs);
  }
  r.record('lat', 'ours', 4);
  r.record('lat', 'distribution', 20);
  r.record('mem', 'ours', 120);
  r.record('mem', 'distribution', 30);
  return r;
}

describe('Results', () => {
  it('summarises medians, the ratio oriented so that >1 is ours better, and the target', () => {
    const r = sample();
    const rps = r.summary('rps');
    expect(rps.median).toEqual({ ours: 1000, distribution: 250 });
    expect(rps.ratio).toBe(4);
    expect(rps.met).toBe(true);
    const lat = r.summary('lat');
    expect(lat.ratio).toBe(5); // 20 ms theirs / 4 ms ours
    expect(lat.met).toBe(false);
    const mem = r.summary('mem');
    expect(mem.ratio).toBe(0.25);
    expect(mem.met).toBe(true); // an absolute target: 120 < 150
  });

  it('refuses unknown metrics and figures that are not finite', () => {
    const r = new Results(defs);
    expect(() => r.record('nope', 'ours', 1)).toThrow(/unknown metric/);
    expect(() => r.record('rps', 'ours', Number.NaN)).toThrow(/not a finite/);
  });

  it('reports a failed workload as failed, without figures judged', () => {
    const r = sample();
    r.fail('manifest', 'boom');
    r.fail('manifest', 'second failure is not kept');
    expect(r.failures.get('manifest')).toBe('boom');
    expect(r.summary('rps')).toMatchObject({ failed: true, ratio: undefined, met: undefined });
  });
});

describe('tableRows', () => {
  it('shows medians, "× better", the target and whether it is met; unmeasured metrics are left out', () => {
    const rows = tableRows(sample().summaries(), { withDistribution: true });
    expect(rows).toEqual([
      ['workload', 'unit', 'ours', 'distribution', '× better', 'target', 'met'],
      ['manifest GET', 'req/s', '1,000', '250', '4×', '≥3×', 'yes'],
      ['tag list', 'ms', '4', '20', '5×', '≥10×', 'NO'],
      ['peak RSS', 'MiB', '120', '30', '0.25×', '<150 MiB', 'yes'],
    ]);
  });

  it('marks ratio targets n/a when ours ran alone', () => {
    const r = new Results(defs);
    r.record('rps', 'ours', 10);
    r.record('mem', 'ours', 200);
    const rows = tableRows(r.summaries(), { withDistribution: false });
    expect(rows[1]).toEqual(['manifest GET', 'req/s', '10', '—', '—', '≥3×', 'n/a']);
    expect(rows[2]).toEqual(['peak RSS', 'MiB', '200', '—', '—', '<150 MiB', 'NO']);
  });

  it('shows failed workloads as such', () => {
    const r = sample();
    r.fail('tags', 'broken');
    expect(tableRows(r.summaries(), { withDistribution: true })[2]).toEqual(['tag list', 'ms', 'failed', 'failed', '—', '≥10×', 'FAILED']);
  });
});

describe('renderTable', () => {
  it('pads columns and right-aligns the figures', () => {
    const text = renderTable([
      ['workload', 'unit', 'ours', 'distribution', '× better', 'target', 'met'],
      ['a', 'ms', '1', '20', '20×', '≥10×', 'yes'],
    ]);
    const lines = text.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe('workload  unit  ours  distribution  × better  target  met');
    expect(lines[2]).toBe('a         ms       1            20       20×  ≥10×    yes');
  });
});

describe('metricsJson', () => {
  it('keeps every sample and the judged figures', () => {
    const json = metricsJson(sample().summaries());
    expect(json[0]).toMatchObject({ id: 'rps', samples: { ours: [900, 1000, 1100], distribution: [200, 250, 300] }, ratioOursBetter: 4, met: true });
    expect(json[3]).toMatchObject({ id: 'unmeasured', samples: {}, ratioOursBetter: null, met: null });
  });
});

describe('fileTimestamp', () => {
  it('is ISO 8601 without colons', () => {
    expect(fileTimestamp(new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 6)))).toBe('2025-01-02T03-04-05.006Z');
  });
});

describe('parseProcStatus', () => {
  it('reads VmRSS and VmHWM in bytes', () => {
    const text = 'Name:\tnode\nVmPeak:\t 1260428 kB\nVmHWM:\t   94520 kB\nVmRSS:\t   81916 kB\nThreads:\t11\n';
    expect(parseProcStatus(text)).toEqual({ rss: 81916 * 1024, hwm: 94520 * 1024 });
    expect(parseProcStatus('Name:\tzombie\n')).toEqual({});
  });
});

describe('Results notes', () => {
  it('keeps each distinct note once, and lets a keyed note be rewritten in place', () => {
    const r = new Results(defs);
    r.note('lat', 'first');
    r.note('lat', 'first');
    r.note('lat', 'counts: 4', 'budget');
    r.note('lat', 'last');
    r.note('lat', 'counts: 4, 5', 'budget');
    expect(r.summary('lat').notes).toEqual(['first', 'counts: 4, 5', 'last']);
  });
});
