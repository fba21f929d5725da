/**
 * `ocireg lifecycle run [--repository R] [--dry-run] [config]`: applies the repositories'
 * lifecycle policies now, as the schedule would, and prints what it expired (or, with
 * --dry-run, what it would). Exit codes: 0 done, 1 the configuration, the store or a policy
 * failed, 2 bad arguments.
 */
import { parseArgs } from 'node:util';
import { EcrCredentials } from './auth/ecr-credentials.js';
import { loadCommandConfig, openCommandStorage, processOutput, type Output } from './command-io.js';
import { openEcr } from './ecr/setup.js';
import { Registry } from './registry/registry.js';

export const LIFECYCLE_HELP = `  lifecycle run [--repository NAME] [--dry-run] [config]
                    Apply the ECR lifecycle policies now (every repository that has one, or NAME):
                    expired images lose their manifest and tags. --dry-run prints what would go.
`;


export async function runLifecycleCommand(argv: readonly string[], out: Output = processOutput): Promise<number> {
  const [sub, ...args] = argv;
  let parsed;
  try {
    if (sub !== 'run') throw new TypeError(`unknown lifecycle command ${JSON.stringify(sub ?? '')}`);
    parsed = parseArgs({
      args: [...args],
      options: { repository: { type: 'string' }, 'dry-run': { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
    if (parsed.positionals.length > 1) throw new TypeError(`unexpected arguments: ${parsed.positionals.slice(1).join(' ')}`);
  } catch (err) {
    out.stderr(`${(err as Error).message}\n\nUsage:\n${LIFECYCLE_HELP}`);
    return 2;
  }
  const path = parsed.positionals[0];
  const dryRun = parsed.values['dry-run'] ?? false;
  const repository = parsed.values.repository;
  const config = loadCommandConfig(path, out);
  if (!config) return 1;
  if (!config.ecr) {
    out.stderr('lifecycle policies are part of the ECR API: set ecr.enabled: true (with ecr.credentials) first\n');
    return 1;
  }
  if (!dryRun && (config.storage.readOnly || !config.storage.deleteEnabled)) {
    out.stderr('the registry is read-only or has deletes disabled: nothing can be expired (use --dry-run to see the plan)\n');
    return 1;
  }
  const opened = await openCommandStorage(config, out);
  if (!opened) return 1;
  const { store, index } = opened;
  try {
    const registry = new Registry(store, index);
    const ecr = openEcr(registry, config.ecr, new EcrCredentials(config.ecr.credentials));
    if (repository !== undefined && !(await ecr.services.repositories.get(repository))) {
      out.stderr(`no repository named ${JSON.stringify(repository)}\n`);
      return 1;
    }
    // The registry's own runs take this lock too: with several nodes (or a server beside this
    // command, on PostgreSQL), one run at a time.
    const outcome = await index.locks.tryRun('job:lifecycle', () =>
      ecr.services.lifecycle.run({ ...(repository !== undefined ? { repository } : {}), dryRun }),
    );
    if (!outcome.ran) {
      out.stderr('a lifecycle run is in progress on a registry node; try again when it ends\n');
      return 1;
    }
    const { reports, failed } = outcome.value;
    const verb = dryRun ? 'would expire' : 'expired';
    let total = 0;
    for (const r of reports) {
      for (const e of r.expired) {
        total++;
        const tags = e.tags.length > 0 ? e.tags.join(',') : '<untagged>';
        out.stdout(`${r.repository}\t${e.digest}\t${tags}\trule ${e.rulePriority}\n`);
      }
      for (const e of r.skipped) out.stderr(`${r.repository}: kept ${e.digest}: it changed since the plan was made\n`);
    }
    for (const f of failed) out.stderr(`${f.repository}: policy not applied: ${f.reason}\n`);
    out.stderr(`${verb} ${total} image${total === 1 ? '' : 's'} in ${reports.length} repositor${reports.length === 1 ? 'y' : 'ies'}\n`);
    return failed.length > 0 ? 1 : 0;
  } finally {
    await index.close();
    await store.close?.();
  }
}
