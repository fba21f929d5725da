import type { CreationTemplateRow, EcrIndex, EcrRepositoryRow, EcrSetting, NewEcrRepository, PullThroughRuleRow, SettingValue } from '../contract.js';
import { ECR_SETTING_COLUMNS as COLUMNS, withEcrDefaults, type StoredEcrRow } from '../rows.js';
import { limitOf, Rollback, type PgDb } from './database.js';

const SETTINGS = `e.tag_mutability AS "tagMutability", e.mutability_exclusions AS "mutabilityExclusions",
  e.scan_on_push AS "scanOnPush", e.encryption, e.resource_tags AS "resourceTags", e.policy,
  e.lifecycle_policy AS "lifecyclePolicy", e.lifecycle_policy_updated_at AS "lifecyclePolicyUpdatedAt"`;


const TEMPLATE_COLUMNS = 'prefix, template, created_at AS "createdAt", updated_at AS "updatedAt"';
const RULE_COLUMNS = 'prefix, rule, created_at AS "createdAt", updated_at AS "updatedAt"';

/** ECR's tables of the PostgreSQL index: repository settings, creation templates, pull-through cache rules and registry-wide settings. */
export class PostgresEcrIndex implements EcrIndex {
  constructor(private readonly db: PgDb) {}

  // ---- repositories ----

  /** A repository's settings: its own, or ECR's defaults for one the registry holds; undefined if neither. */
  async repository(name: string): Promise<EcrRepositoryRow | undefined> {
    const row = await this.db.one<StoredEcrRow>(
      `SELECT $1::text AS name, COALESCE(e.created_at, r.created_at) AS "createdAt", ${SETTINGS}
       FROM (SELECT 1) AS one
       LEFT JOIN ecr_repositories e ON e.name = $1 LEFT JOIN repositories r ON r.name = $1
       WHERE e.name IS NOT NULL OR r.name IS NOT NULL`,
      [name],
    );
    return row ? withEcrDefaults(row) : undefined;
  }

  async exists(name: string): Promise<boolean> {
    const row = await this.db.one<{ found: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM ecr_repositories WHERE name = $1)
           OR EXISTS (SELECT 1 FROM repositories WHERE name = $1) AS found`,
      [name],
    );
    return row?.found === true;
  }

  /** Repositories (with settings or held by the registry) named after `after`, in byte order, at most `limit`. */
  async repositories(after: string, limit: number): Promise<EcrRepositoryRow[]> {
    const rows = await this.db.rows<StoredEcrRow>(
      `WITH names(name) AS (
         SELECT name FROM repositories WHERE name > $1
         UNION SELECT name FROM ecr_repositories WHERE name > $1
         ORDER BY name LIMIT $2)
       SELECT n.name, COALESCE(e.created_at, r.created_at) AS "createdAt", ${SETTINGS}
       FROM names n LEFT JOIN ecr_repositories e ON e.name = n.name LEFT JOIN repositories r ON r.name = n.name
       ORDER BY n.name`,
      [after, limitOf(limit)],
    );
    return rows.map(withEcrDefaults);
  }

  /**
   * Creates the repository with its settings and the registry's own row (so that /v2/ sees the
   * empty repository). The unique keys arbitrate between nodes: if either row exists already,
   * nothing is written and the answer is false.
   */
  async insertRepository(row: NewEcrRepository): Promise<boolean> {
    return this.db.tx(async (q) => {
      const settings = await q.one(
        `INSERT INTO ecr_repositories (name, created_at, tag_mutability, mutability_exclusions, scan_on_push, encryption,
           resource_tags, policy, lifecycle_policy, lifecycle_policy_updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (name) DO NOTHING RETURNING name`,
        [
          row.name,
          row.createdAt,
          row.tagMutability,
          row.mutabilityExclusions,
          row.scanOnPush,
          row.encryption,
          row.resourceTags,
          row.policy,
          row.lifecyclePolicy,
          row.lifecyclePolicyUpdatedAt ?? null,
        ],
      );
      if (!settings) throw new Rollback(false);
      const registryRow = await q.one(
        'INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id',
        [row.name, row.createdAt],
      );
      if (!registryRow) throw new Rollback(false);
      return true;
    });
  }

  /**
   * Changes settings in one transaction (a repository without settings of its own gets them
   * first, with the time of its first push); false if there is no such repository.
   */
  async update(name: string, changes: { readonly [K in EcrSetting]?: SettingValue<K> }): Promise<boolean> {
    const assignments: string[] = [];
    const values: unknown[] = [name];
    for (const [key, value] of Object.entries(changes) as Array<[EcrSetting, unknown]>) {
      if (value === undefined || !(key in COLUMNS)) continue;
      values.push(value);
      assignments.push(`${COLUMNS[key]} = $${values.length}`);
    }
    return this.db.tx(async (q) => {
      await q.run(
        `INSERT INTO ecr_repositories (name, created_at) SELECT name, created_at FROM repositories WHERE name = $1
         ON CONFLICT (name) DO NOTHING`,
        [name],
      );
      if (assignments.length === 0) return (await q.one('SELECT 1 FROM ecr_repositories WHERE name = $1', [name])) !== undefined;
      return (await q.run(`UPDATE ecr_repositories SET ${assignments.join(', ')} WHERE name = $1`, values)) > 0;
    });
  }

  async deleteRepository(name: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM ecr_repositories WHERE name = $1', [name])) > 0;
  }

  async withLifecyclePolicies(): Promise<string[]> {
    const rows = await this.db.rows<{ name: string }>('SELECT name FROM ecr_repositories WHERE lifecycle_policy IS NOT NULL ORDER BY name');
    return rows.map((r) => r.name);
  }

  // ---- repository creation templates ----

  async template(prefix: string): Promise<CreationTemplateRow | undefined> {
    return this.db.one<CreationTemplateRow>(`SELECT ${TEMPLATE_COLUMNS} FROM ecr_creation_templates WHERE prefix = $1`, [prefix]);
  }

  async templates(after: string, limit: number): Promise<CreationTemplateRow[]> {
    return this.db.rows<CreationTemplateRow>(
      `SELECT ${TEMPLATE_COLUMNS} FROM ecr_creation_templates WHERE prefix > $1 ORDER BY prefix LIMIT $2`,
      [after, limitOf(limit)],
    );
  }

  async insertTemplate(prefix: string, template: string, now: number): Promise<boolean> {
    const changed = await this.db.run(
      `INSERT INTO ecr_creation_templates (prefix, template, created_at, updated_at) VALUES ($1, $2, $3, $3)
       ON CONFLICT (prefix) DO NOTHING`,
      [prefix, template, now],
    );
    return changed > 0;
  }

  async updateTemplate(prefix: string, template: string, now: number): Promise<boolean> {
    return (await this.db.run('UPDATE ecr_creation_templates SET template = $1, updated_at = $2 WHERE prefix = $3', [template, now, prefix])) > 0;
  }

  async deleteTemplate(prefix: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM ecr_creation_templates WHERE prefix = $1', [prefix])) > 0;
  }

  // ---- pull-through cache rules ----

  async pullThroughRule(prefix: string): Promise<PullThroughRuleRow | undefined> {
    return this.db.one<PullThroughRuleRow>(`SELECT ${RULE_COLUMNS} FROM ecr_pull_through_rules WHERE prefix = $1`, [prefix]);
  }

  async pullThroughRules(after: string, limit: number): Promise<PullThroughRuleRow[]> {
    return this.db.rows<PullThroughRuleRow>(
      `SELECT ${RULE_COLUMNS} FROM ecr_pull_through_rules WHERE prefix > $1 ORDER BY prefix LIMIT $2`,
      [after, limitOf(limit)],
    );
  }

  async insertPullThroughRule(prefix: string, rule: string, now: number): Promise<boolean> {
    const changed = await this.db.run(
      `INSERT INTO ecr_pull_through_rules (prefix, rule, created_at, updated_at) VALUES ($1, $2, $3, $3)
       ON CONFLICT (prefix) DO NOTHING`,
      [prefix, rule, now],
    );
    return changed > 0;
  }

  async updatePullThroughRule(prefix: string, rule: string, now: number): Promise<boolean> {
    return (await this.db.run('UPDATE ecr_pull_through_rules SET rule = $1, updated_at = $2 WHERE prefix = $3', [rule, now, prefix])) > 0;
  }

  async deletePullThroughRule(prefix: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM ecr_pull_through_rules WHERE prefix = $1', [prefix])) > 0;
  }

  // ---- registry-wide settings ----

  async setting(name: string): Promise<string | undefined> {
    return (await this.db.one<{ value: string }>('SELECT value FROM ecr_registry_settings WHERE name = $1', [name]))?.value;
  }

  async putSetting(name: string, value: string): Promise<void> {
    await this.db.run(
      'INSERT INTO ecr_registry_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value',
      [name, value],
    );
  }

  async deleteSetting(name: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM ecr_registry_settings WHERE name = $1', [name])) > 0;
  }
}

