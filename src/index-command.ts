/**
 * `ocireg index copy --to <target config> [config]`: copies the SQLite index that `config` names into
 * the (empty) index that the target configuration names, PostgreSQL usually, with what the blob store
 * does not hold and reindex cannot rebuild: access keys, ECR settings, templates and pull-through
 * cache rules, pull times and lifecycle previews. Stop the registry first. Exit codes: 0 done, 1 the configuration or an index
 * failed (or the target is not empty), 2 bad arguments.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config/config.js';
import type { Index, NewManifest, PreviewStatus } from './index/contract.js';
import { describeIndex, IndexOpenError, openIndex } from './index/open-index.js';
import type { SqliteIndex } from './index/sqlite/index.js';
import { processOutput, type Output } from './command-io.js';

export const INDEX_HELP = `  index copy --to TARGET [config]
                    Copy the SQLite index of config into the empty index of the TARGET configuration
                    (PostgreSQL, to go from one node to several), with access keys, ECR settings and
                    pull times. Stop the registry first.
`;


/** Rows read from the source per query, so that memory holds one batch. */
const BATCH = 500;

export interface CopyReport {
  repositories: number;
  blobs: number;
  manifests: number;
  tags: number;
  uploads: number;
  accessKeys: number;
  ecrRepositories: number;
  templates: number;
  pullThroughRules: number;
  settings: number;
  pullTimes: number;
  previews: number;
}

export async function runIndexCommand(argv: readonly string[], out: Output = processOutput): Promise<number> {
  const [sub, ...args] = argv;
  let parsed;
  try {
    if (sub !== 'copy') throw new TypeError(`unknown index command ${JSON.stringify(sub ?? '')}`);
    parsed = parseArgs({ args: [...args], options: { to: { type: 'string' } }, allowPositionals: true, strict: true });
    if (parsed.values.to === undefined || parsed.values.to === '') throw new TypeError('index copy: --to TARGET (a configuration file) is required');
    if (parsed.positionals.length > 1) throw new TypeError(`unexpected arguments: ${parsed.positionals.slice(1).join(' ')}`);
  } catch (err) {
    out.stderr(`${(err as Error).message}\n\nUsage:\n${INDEX_HELP}`);
    return 2;
  }
  const path = parsed.positionals[0];
  let source: Index | undefined;
  let target: Index | undefined;
  try {
    const from = loadConfig(path ? { path } : {});
    const to = loadConfig({ path: parsed.values.to });
    if (from.index.driver !== 'sqlite') throw new ConfigError(`index copy: the source index must be SQLite, not ${from.index.driver}`);
    if (to.index.driver === 'sqlite' && to.index.path === from.index.path) throw new ConfigError('index copy: the target is the source');
    // Opening a SQLite path that holds nothing would make an empty index there and copy nothing.
    if (!existsSync(from.index.path)) throw new ConfigError(`index copy: there is no SQLite index at ${from.index.path}`);
    source = await openIndex(from.index);
    target = await openIndex(to.index);
    const report = await copyIndex(source as SqliteIndex, target);
    out.stdout(
      `copied ${describeIndex(from.index)} to ${describeIndex(to.index)}: ${report.repositories} repositories, ` +
        `${report.manifests} manifests, ${report.tags} tags, ${report.blobs} blobs, ${report.uploads} uploads, ` +
        `${report.accessKeys} access keys, ${report.ecrRepositories} ECR repository settings, ${report.templates} creation templates, ` +
        `${report.pullThroughRules} pull-through cache rules, ${report.settings} registry settings, ${report.pullTimes} pull times, ${report.previews} lifecycle previews\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof IndexOpenError || err instanceof TargetNotEmptyError) {
      out.stderr(`${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    await source?.close();
    await target?.close();
  }
}

export class TargetNotEmptyError extends Error {
  override name = 'TargetNotEmptyError';
}

/**
 * Copies every row of the SQLite index into `target`, which must be empty (no repository, no access
 * key, no ECR setting): a copy over a registry in use would mix two registries. Reads in batches.
 */
export async function copyIndex(source: SqliteIndex, target: Index): Promise<CopyReport> {
  const db = source.db;
  const settings = db.prepare<[], { name: string; value: string }>('SELECT name, value FROM ecr_registry_settings ORDER BY name').all();
  let settingTaken = false;
  for (const { name } of settings) settingTaken ||= (await target.ecr.setting(name)) !== undefined;
  if (
    settingTaken ||
    (await target.registry.catalog('', 1)).length > 0 ||
    (await target.registry.staleUploads(Number.MAX_SAFE_INTEGER)).length > 0 ||
    (await target.accessKeys.list()).length > 0 ||
    (await target.ecr.repositories('', 1)).length > 0 ||
    (await target.ecr.templates('', 1)).length > 0 ||
    (await target.ecr.pullThroughRules('', 1)).length > 0 ||
    (await target.pullTimes.page({ repository: '', digest: '' }, 1)).length > 0 ||
    (await target.previews.all()).length > 0
  ) {
    throw new TargetNotEmptyError(`index copy: the target index ${target.where} is not empty; copy only into a new database`);
  }
  const report: CopyReport = {
    repositories: 0, blobs: 0, manifests: 0, tags: 0, uploads: 0, accessKeys: 0,
    ecrRepositories: 0, templates: 0, pullThroughRules: 0, settings: 0, pullTimes: 0, previews: 0,
  };

  // ECR's repository settings first: insertRepository also creates the registry's row, with the
  // settings' creation time, which the registry's own copy below then keeps.
  const ecrRows = db.prepare<[string, number], { name: string }>('SELECT name FROM ecr_repositories WHERE name > ? ORDER BY name LIMIT ?');
  for (let after = ''; ; ) {
    const names = ecrRows.all(after, BATCH).map((r) => r.name);
    for (const name of names) {
      const row = await source.ecr.repository(name);
      if (row && (await target.ecr.insertRepository(row))) report.ecrRepositories++;
    }
    if (names.length < BATCH) break;
    after = names[names.length - 1]!;
  }
  for (let after = ''; ; ) {
    const rows = await source.ecr.templates(after, BATCH);
    for (const t of rows) {
      await target.ecr.insertTemplate(t.prefix, t.template, t.createdAt);
      if (t.updatedAt !== t.createdAt) await target.ecr.updateTemplate(t.prefix, t.template, t.updatedAt);
      report.templates++;
    }
    if (rows.length < BATCH) break;
    after = rows[rows.length - 1]!.prefix;
  }
  for (let after = ''; ; ) {
    const rows = await source.ecr.pullThroughRules(after, BATCH);
    for (const r of rows) {
      await target.ecr.insertPullThroughRule(r.prefix, r.rule, r.createdAt);
      if (r.updatedAt !== r.createdAt) await target.ecr.updatePullThroughRule(r.prefix, r.rule, r.updatedAt);
      report.pullThroughRules++;
    }
    if (rows.length < BATCH) break;
    after = rows[rows.length - 1]!.prefix;
  }
  for (const { name, value } of settings) {
    await target.ecr.putSetting(name, value);
    report.settings++;
  }

  // Blobs, then each repository: its blob links, its manifests (oldest first, with their
  // references and times) and its tags.
  const blobs = db.prepare<[string, number], { digest: string; size: number; createdAt: number }>(
    'SELECT digest, size, created_at AS createdAt FROM blobs WHERE digest > ? ORDER BY digest LIMIT ?',
  );
  for (let after = ''; ; ) {
    const rows = blobs.all(after, BATCH);
    for (const b of rows) await target.registry.insertBlob(b.digest, b.size, b.createdAt);
    report.blobs += rows.length;
    if (rows.length < BATCH) break;
    after = rows[rows.length - 1]!.digest;
  }
  const repos = db.prepare<[string, number], { id: number; name: string; createdAt: number }>(
    'SELECT id, name, created_at AS createdAt FROM repositories WHERE name > ? ORDER BY name LIMIT ?',
  );
  const links = db.prepare<[number, string, number], { digest: string; size: number; createdAt: number }>(
    `SELECT rb.digest, b.size, rb.created_at AS createdAt FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
     WHERE rb.repository_id = ? AND rb.digest > ? ORDER BY rb.digest LIMIT ?`,
  );
  const manifests = db.prepare<[number, number, number], ManifestSourceRow>(
    `SELECT id, digest, media_type AS mediaType, content, artifact_type AS artifactType, subject, annotations, created_at AS createdAt
     FROM manifests WHERE repository_id = ? AND id > ? ORDER BY id LIMIT ?`,
  );
  const references = db.prepare<[number], { digest: string; kind: 'blob' | 'manifest' }>(
    'SELECT digest, kind FROM manifest_references WHERE manifest_id = ? ORDER BY kind, digest',
  );
  const tags = db.prepare<[number, string], { name: string; updatedAt: number }>(
    'SELECT name, updated_at AS updatedAt FROM tags WHERE repository_id = ? AND digest = ? ORDER BY name',
  );
  for (let after = ''; ; ) {
    const rows = repos.all(after, BATCH);
    for (const repo of rows) {
      await target.registry.ensureRepository(repo.name, repo.createdAt);
      for (let last = ''; ; ) {
        const page = links.all(repo.id, last, BATCH);
        for (const l of page) await target.registry.addBlob(repo.name, l.digest, l.size, l.createdAt);
        if (page.length < BATCH) break;
        last = page[page.length - 1]!.digest;
      }
      for (let last = 0; ; ) {
        const page = manifests.all(repo.id, last, BATCH);
        for (const m of page) {
          const refs = references.all(m.id);
          const row: NewManifest = {
            digest: m.digest,
            mediaType: m.mediaType,
            content: m.content,
            ...(m.artifactType !== null ? { artifactType: m.artifactType } : {}),
            ...(m.subject !== null ? { subject: m.subject } : {}),
            ...(m.annotations !== null ? { annotations: JSON.parse(m.annotations) as Record<string, string> } : {}),
            blobs: refs.filter((r) => r.kind === 'blob').map((r) => r.digest),
            children: refs.filter((r) => r.kind === 'manifest').map((r) => r.digest),
          };
          await target.registry.putManifest(repo.name, row, [], m.createdAt);
          // Each tag with the time it was last moved.
          for (const t of tags.all(repo.id, m.digest)) {
            await target.registry.putManifest(repo.name, row, [t.name], t.updatedAt);
            report.tags++;
          }
        }
        report.manifests += page.length;
        if (page.length < BATCH) break;
        last = page[page.length - 1]!.id;
      }
      report.repositories++;
    }
    if (rows.length < BATCH) break;
    after = rows[rows.length - 1]!.name;
  }
  for (const u of db.prepare<[], { id: string; repository: string; createdAt: number; updatedAt: number }>(
    'SELECT id, repository, created_at AS createdAt, updated_at AS updatedAt FROM uploads ORDER BY id',
  ).iterate()) {
    await target.registry.insertUpload(u.id, u.repository, u.createdAt, u.updatedAt);
    report.uploads++;
  }

  // What the store does not hold.
  const keyIds = db.prepare<[], { id: string }>('SELECT id FROM access_keys ORDER BY created_at, id').all();
  for (const { id } of keyIds) {
    const key = await source.accessKeys.byId(id);
    if (!key) continue;
    await target.accessKeys.insert(key);
    if (key.lastUsedAt !== null) await target.accessKeys.touch(id, key.lastUsedAt);
    if (key.revokedAt !== null) await target.accessKeys.revoke(id, key.revokedAt);
    report.accessKeys++;
  }
  for (let after = { repository: '', digest: '' }; ; ) {
    const page = await source.pullTimes.page(after, BATCH);
    if (page.length > 0) await target.pullTimes.record(page);
    report.pullTimes += page.length;
    if (page.length < BATCH) break;
    const last = page[page.length - 1]!;
    after = { repository: last.repository, digest: last.digest };
  }
  for (const p of await source.previews.all()) {
    await target.previews.save({ ...p, status: p.status as PreviewStatus });
    report.previews++;
  }
  return report;
}

interface ManifestSourceRow {
  id: number;
  digest: string;
  mediaType: string;
  content: Buffer;
  artifactType: string | null;
  subject: string | null;
  annotations: string | null;
  createdAt: number;
}
