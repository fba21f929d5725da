// A process's resident memory from /proc: its peak (VmHWM, which writing "5" to clear_refs
// resets) and samples of VmRSS taken while something runs.
import { readFile, writeFile } from 'node:fs/promises';

/** VmRSS and VmHWM in bytes, from the text of /proc/<pid>/status (undefined when absent). */
export function parseProcStatus(text: string): { rss?: number; hwm?: number } {
  const kb = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const out: { rss?: number; hwm?: number } = {};
  const rss = kb('VmRSS');
  const hwm = kb('VmHWM');
  if (rss !== undefined) out.rss = rss;
  if (hwm !== undefined) out.hwm = hwm;
  return out;
}

async function status(pid: number): Promise<{ rss?: number; hwm?: number }> {
  try {
    return parseProcStatus(await readFile(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return {};
  }
}

export interface PeakMemory {
  /** The peak in bytes: the larger of VmHWM after and the highest VmRSS sample. */
  peak: number;
  /** Whether VmHWM could be reset first (else it is the peak since the process started). */
  hwmReset: boolean;
  samples: number;
}

/** Runs `work` while watching the memory of `pid` (samples every `intervalMs`). */
export async function withPeakMemory<T>(pid: number, work: () => Promise<T>, intervalMs = 25): Promise<{ result: T; memory: PeakMemory }> {
  let hwmReset = true;
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
  } catch {
    hwmReset = false;
  }
  let maxRss = (await status(pid)).rss ?? 0;
  let samples = 1;
  let reading = false;
  const timer = setInterval(() => {
    if (reading) return;
    reading = true;
    void status(pid).then((s) => {
      reading = false;
      samples++;
      if (s.rss !== undefined && s.rss > maxRss) maxRss = s.rss;
    });
  }, intervalMs);
  let result: T;
  try {
    result = await work();
  } finally {
    clearInterval(timer);
  }
  const after = await status(pid);
  const candidates = [maxRss, after.rss ?? 0];
  if (hwmReset && after.hwm !== undefined) candidates.push(after.hwm);
  return { result, memory: { peak: Math.max(...candidates), hwmReset, samples } };
}
