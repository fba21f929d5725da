// CPU time from /proc, to say where a workload's time went when several processes (registry
// nodes, PostgreSQL, s3rver, haproxy, the client) share the machine's cores.
import { readFileSync } from 'node:fs';

/** Linux reports /proc times in USER_HZ ticks, which is 100 a second on every architecture Node runs on. */
const TICKS_PER_SECOND = 100;

/** utime, stime, cutime and cstime in seconds from the text of /proc/<pid>/stat (undefined if malformed). */
export function parseProcStat(text: string): { self: number; children: number } | undefined {
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its last ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).trim().split(/\s+/);
  // fields[0] is field 3 (state), so utime (14) is fields[11], stime [12], cutime [13], cstime [14]
  const n = [11, 12, 13, 14].map((i) => Number(fields[i]));
  if (n.some((v) => !Number.isFinite(v))) return undefined;
  return { self: (n[0]! + n[1]!) / TICKS_PER_SECOND, children: (n[2]! + n[3]!) / TICKS_PER_SECOND };
}

/** A process's own CPU seconds so far (0 once it is gone). */
export function cpuSecondsOf(pid: number | 'self'): { self: number; children: number } {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8')) ?? { self: 0, children: 0 };
  } catch {
    return { self: 0, children: 0 };
  }
}

/**
 * Busy and total CPU seconds of the whole machine so far (/proc/stat's first line), all cores
 * together, and of those the interrupt and softirq time (loopback networking is much of it).
 */
export function machineCpu(): { busy: number; total: number; irq: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already inside user)
    const total = v.slice(0, 8).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const irq = (v[5] ?? 0) + (v[6] ?? 0);
    return { busy: (total - idle) / TICKS_PER_SECOND, total: total / TICKS_PER_SECOND, irq: irq / TICKS_PER_SECOND };
  } catch {
    return { busy: 0, total: 0, irq: 0 };
  }
}

export interface CpuUse {
  wallSec: number;
  /** Cores busy on the whole machine during the work (busy CPU seconds over wall seconds). */
  machineCores: number;
  /** Of those, the cores in interrupts and softirqs (not charged to any process). */
  irqCores: number;
  /** CPU seconds per role during the work. */
  seconds: Record<string, number>;
}

/**
 * Runs `work` and measures the CPU seconds of each role's processes (summed), of the client (this
 * process and the children it waited for meanwhile: wrk, ab, curl) and of the machine. The
 * processes are listed before and after: one that appeared meanwhile (a PostgreSQL backend a pool
 * opened) counts with all its CPU, one that ended meanwhile with none.
 */
export async function cpuDuring<T>(
  list: () => Promise<ReadonlyArray<{ role: string; pid: number }>>,
  work: () => Promise<T>,
): Promise<{ result: T; cpu: CpuUse }> {
  const roles = await list();
  const before = new Map(roles.map((r) => [r.pid, cpuSecondsOf(r.pid).self]));
  const clientBefore = cpuSecondsOf('self');
  const machineBefore = machineCpu();
  const t0 = performance.now();
  const result = await work();
  const wallSec = (performance.now() - t0) / 1000;
  const machineAfter = machineCpu();
  const clientAfter = cpuSecondsOf('self');
  const after = await list();
  const seconds: Record<string, number> = {};
  for (const r of [...roles, ...after.filter((a) => !before.has(a.pid))]) seconds[r.role] ??= 0;
  for (const r of after) {
    seconds[r.role]! += Math.max(0, cpuSecondsOf(r.pid).self - (before.get(r.pid) ?? 0));
  }
  seconds.client = clientAfter.self - clientBefore.self + (clientAfter.children - clientBefore.children);
  const machineCores = wallSec > 0 ? (machineAfter.busy - machineBefore.busy) / wallSec : 0;
  const irqCores = wallSec > 0 ? (machineAfter.irq - machineBefore.irq) / wallSec : 0;
  return { result, cpu: { wallSec, machineCores, irqCores, seconds } };
}
