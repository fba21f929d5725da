/**
 * `ocireg gc [--dry-run] [--delete-untagged] [config]`: collects garbage now, as the schedule
 * would (storage.maintenance.gc), with the registry running or not, and prints what it removed
 * (or, with --dry-run, what it would). Exit codes: 0 done, 1 the configuration, the store or the
 * index failed (or the store kept some blobs), 2 bad arguments.
 */
import { parseArgs } from 'node:util';
import { loadCommandConfig, openCommandStorage, processOutput, type Output } from './command-io.js';
import { GarbageCollector, type GcReport } from './maintenance/gc/collector.js';
import { Registry } from './registry/registry.js';

export const GC_HELP = `  gc [--dry-run] [--delete-untagged] [config]
                    Collect garbage now: blobs no manifest references (and, with --delete-untagged or
                    storage.maintenance.gc.deleteuntagged, manifests no tag reaches), older than
                    storage.maintenance.gc.delay. --dry-run prints what would go.
`;


export async function runGcCommand(argv: readonly string[], out: Output = processOutput): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { 'dry-run': { type: 'boolean' }, 'delete-untagged': { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
    if (parsed.positionals.length > 1) throw new TypeError(`unexpected arguments: ${parsed.positionals.slice(1).join(' ')}`);
  } catch (err) {
    out.stderr(`${(err as Error).message}\n\nUsage:\n${GC_HELP}`);
    return 2;
  }
  const path = parsed.positionals[0];
  const config = loadCommandConfig(path, out);
  if (!config) return 1;
  const dryRun = parsed.values['dry-run'] ?? false;
  const deleteUntagged = parsed.values['delete-untagged'] ?? config.storage.gc.deleteUntagged;
  if (!dryRun && config.storage.readOnly) {
    out.stderr('the registry is read-only (storage.maintenance.readonly): nothing can be collected (use --dry-run to see what would go)\n');
    return 1;
  }
  const opened = await openCommandStorage(config, out);
  if (!opened) return 1;
  const { store, index } = opened;
  try {
    const collector = new GarbageCollector(new Registry(store, index));
    // The registry's scheduled runs take this lock too: with PostgreSQL, one run at a time over
    // every node. (An SQLite registry's lock is its own process's; a run beside it is still safe.)
    const outcome = await index.locks.tryRun('job:gc', () =>
      collector.run({ delayMs: config.storage.gc.delayMs, dryRun, deleteUntagged }),
    );
    if (!outcome.ran) {
      out.stderr('a garbage collection is running on a registry node; try again when it ends\n');
      return 1;
    }
    out.stdout(`${describeGcReport(outcome.value)}\n`);
    if (outcome.value.failed > 0) {
      out.stderr(`${outcome.value.failed} blob(s) could not be deleted from the store and were kept; see the store's errors and run again\n`);
      return 1;
    }
    return 0;
  } finally {
    await index.close();
    await store.close?.();
  }
}

/** One line saying what a run did (the log's message and the command's output). */
export function describeGcReport(r: GcReport): string {
  const verb = r.dryRun ? 'would remove' : 'removed';
  const kept = r.reprieved > 0 ? `, ${r.reprieved} kept (used again since marked)` : '';
  const bytes = r.bytes < 1024 ? `${r.bytes} bytes` : `${formatBytes(r.bytes)}, ${r.bytes} bytes`;
  return `${verb} ${r.manifests} manifest${r.manifests === 1 ? '' : 's'} and ${r.blobs} blob${r.blobs === 1 ? '' : 's'} (${bytes})${kept} in ${(r.durationMs / 1000).toFixed(1)} s`;
}

export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}
