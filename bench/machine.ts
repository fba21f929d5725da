// What machine this is, and its limits for the push: one core's SHA-256 and the disk's write
// speed with fsync.
import { createHash, randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { run, which } from './proc.js';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
  kernel: string;
  distribution: string | undefined;
  /** The commit of the tree measured, with "+dirty" when src/ has uncommitted changes. */
  commit: string | undefined;
}

export async function machineInfo(projectRoot: string): Promise<MachineInfo> {
  const list = cpus();
  let distribution: string | undefined;
  if (which('docker-registry')) {
    const ran = await run('docker-registry', ['--version'], { timeoutMs: 10_000, allowFailure: true });
    distribution = (ran.stdout || ran.stderr).trim() || undefined;
  }
  let commit: string | undefined;
  const head = await run('git', ['rev-parse', '--short', 'HEAD'], { timeoutMs: 10_000, cwd: projectRoot, allowFailure: true }).catch(() => undefined);
  if (head?.code === 0) {
    const dirty = await run('git', ['status', '--porcelain', '--', 'src'], { timeoutMs: 10_000, cwd: projectRoot, allowFailure: true });
    commit = `${head.stdout.trim()}${dirty.stdout.trim() ? '+dirty' : ''}`;
  }
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    kernel: release(),
    distribution,
    commit,
  };
}

export interface Limits {
  /** MB/s (10^6 bytes) of SHA-256 on one core. */
  sha256MBps: number;
  /** MB/s of writing a file then fsyncing it. */
  diskWriteMBps: number;
  bytes: number;
}

const MIB = 1024 * 1024;

/** SHA-256 of `bytes` (whole MiB) as 1 MiB updates of one random buffer. */
export function sha256Speed(bytes: number): number {
  const buf = randomBytes(MIB);
  const pieces = Math.max(1, Math.round(bytes / MIB));
  const hash = createHash('sha256');
  const t0 = performance.now();
  for (let i = 0; i < pieces; i++) hash.update(buf);
  hash.digest();
  const seconds = (performance.now() - t0) / 1000;
  return (pieces * MIB) / seconds / 1e6;
}

/**
 * Writes `bytes` (whole MiB) in 1 MiB writes to a file in `dir`, fsyncs it, deletes it. Every
 * 4 KiB block written is different (random bytes, stamped with the piece's number): a disk
 * that deduplicates or compresses blocks would otherwise look faster than it is for layers.
 */
export async function diskWriteSpeed(dir: string, bytes: number): Promise<number> {
  const buf = randomBytes(MIB);
  const pieces = Math.max(1, Math.round(bytes / MIB));
  const path = join(dir, 'disk-speed.tmp');
  const t0 = performance.now();
  const fh = await open(path, 'w');
  try {
    for (let i = 0; i < pieces; i++) {
      for (let block = 0; block < MIB; block += 4096) buf.writeUInt32LE(i, block);
      await fh.write(buf, 0, buf.length);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  await rm(path, { force: true });
  return (pieces * MIB) / seconds / 1e6;
}

export async function measureLimits(dir: string, bytes: number): Promise<Limits> {
  const sha256MBps = sha256Speed(bytes);
  const diskWriteMBps = await diskWriteSpeed(dir, bytes);
  return { sha256MBps, diskWriteMBps, bytes };
}
