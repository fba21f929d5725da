import type { CreationTemplateRow, EcrIndex, EcrRepositoryRow, EcrSetting, NewEcrRepository, PullThroughRuleRow, SettingValue } from '../contract.js';
import type { Db } from './database.js';
import { ECR_SETTING_COLUMNS as COLUMNS, withEcrDefaults, type StoredEcrRow } from '../rows.js';

const SETTINGS = `e.tag_mutability AS tagMutability, e.mutability_exclusions AS mutabilityExclusions,
  e.scan_on_push AS scanOnPush, e.encryption, e.resource_tags AS resourceTags, e.policy,
  e.lifecycle_policy AS lifecyclePolicy, e.lifecycle_policy_updated_at AS lifecyclePolicyUpdatedAt`;

type Setter = { run(value: unknown, name: string): { changes: number } };

/**
 * ECR's tables of the SQLite index (migrations 0003 and 0006): repository settings, repository
 * creation templates, pull-through cache rules and registry-wide settings. Every method is synchronous and short. Like access keys,
 * these rows cannot be rebuilt from the blob store.
 */
export class SqliteEcrIndex implements EcrIndex {
  private readonly s;
  private readonly setters: Readonly<Record<EcrSetting, Setter>>;

  constructor(readonly db: Db) {
    this.s = {
      settings: db.prepare<[string], StoredEcrRow>(`SELECT e.name, e.created_at AS createdAt, ${SETTINGS} FROM ecr_repositories e WHERE e.name = ?`),
      pushed: db.prepare<[string], { createdAt: number }>('SELECT created_at AS createdAt FROM repositories WHERE name = ?'),
      page: db.prepare<{ after: string; limit: number }, StoredEcrRow>(
        `WITH names(name) AS (
           SELECT name FROM repositories WHERE name > @after
           UNION SELECT name FROM ecr_repositories WHERE name > @after
           ORDER BY name LIMIT @limit)
         SELECT n.name, COALESCE(e.created_at, r.created_at) AS createdAt, ${SETTINGS}
         FROM names n LEFT JOIN ecr_repositories e ON e.name = n.name LEFT JOIN repositories r ON r.name = n.name
         ORDER BY n.name`,
      ),
      registryRow: db.prepare('INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING'),
      insert: db.prepare(
        `INSERT INTO ecr_repositories (name, created_at, tag_mutability, mutability_exclusions, scan_on_push, encryption,
           resource_tags, policy, lifecycle_policy, lifecycle_policy_updated_at)
         VALUES (@name, @createdAt, @tagMutability, @mutabilityExclusions, @scanOnPush, @encryption, @resourceTags, @policy,
           @lifecyclePolicy, @lifecyclePolicyUpdatedAt)
         ON CONFLICT (name) DO NOTHING`,
      ),
      // A repository pushed before it had settings gets its row, with the time of its first push.
      adopt: db.prepare(
        `INSERT INTO ecr_repositories (name, created_at) SELECT name, created_at FROM repositories WHERE name = ?
         ON CONFLICT (name) DO NOTHING`,
      ),
      delete: db.prepare('DELETE FROM ecr_repositories WHERE name = ?'),
      withLifecyclePolicies: db.prepare<[], string>('SELECT name FROM ecr_repositories WHERE lifecycle_policy IS NOT NULL ORDER BY name').pluck(),

      template: db.prepare<[string], CreationTemplateRow>(
        'SELECT prefix, template, created_at AS createdAt, updated_at AS updatedAt FROM ecr_creation_templates WHERE prefix = ?',
      ),
      templates: db.prepare<[string, number], CreationTemplateRow>(
        `SELECT prefix, template, created_at AS createdAt, updated_at AS updatedAt FROM ecr_creation_templates
         WHERE prefix > ? ORDER BY prefix LIMIT ?`,
      ),
      insertTemplate: db.prepare(
        `INSERT INTO ecr_creation_templates (prefix, template, created_at, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (prefix) DO NOTHING`,
      ),
      updateTemplate: db.prepare('UPDATE ecr_creation_templates SET template = ?, updated_at = ? WHERE prefix = ?'),
      deleteTemplate: db.prepare('DELETE FROM ecr_creation_templates WHERE prefix = ?'),

      rule: db.prepare<[string], PullThroughRuleRow>(
        'SELECT prefix, rule, created_at AS createdAt, updated_at AS updatedAt FROM ecr_pull_through_rules WHERE prefix = ?',
      ),
      rules: db.prepare<[string, number], PullThroughRuleRow>(
        `SELECT prefix, rule, created_at AS createdAt, updated_at AS updatedAt FROM ecr_pull_through_rules
         WHERE prefix > ? ORDER BY prefix LIMIT ?`,
      ),
      insertRule: db.prepare(
        `INSERT INTO ecr_pull_through_rules (prefix, rule, created_at, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (prefix) DO NOTHING`,
      ),
      updateRule: db.prepare('UPDATE ecr_pull_through_rules SET rule = ?, updated_at = ? WHERE prefix = ?'),
      deleteRule: db.prepare('DELETE FROM ecr_pull_through_rules WHERE prefix = ?'),

      setting: db.prepare<[string], string>('SELECT value FROM ecr_registry_settings WHERE name = ?').pluck(),
      putSetting: db.prepare(
        'INSERT INTO ecr_registry_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
      ),
      deleteSetting: db.prepare('DELETE FROM ecr_registry_settings WHERE name = ?'),
    };
    const setters = {} as Record<EcrSetting, Setter>;
    for (const [key, column] of Object.entries(COLUMNS) as Array<[EcrSetting, string]>) {
      setters[key] = db.prepare<[unknown, string]>(`UPDATE ecr_repositories SET ${column} = ? WHERE name = ?`);
    }
    this.setters = setters;
  }

  // ---- repositories ----

  /** A repository's settings: its own, or ECR's defaults for one the registry holds; undefined if neither. */
  async repository(name: string): Promise<EcrRepositoryRow | undefined> {
    const row = this.s.settings.get(name);
    if (row) return withEcrDefaults(row);
    const pushed = this.s.pushed.get(name);
    return pushed ? withEcrDefaults({ name, createdAt: pushed.createdAt } as StoredEcrRow) : undefined;
  }

  /** Whether the repository exists: with settings of its own or held by the registry. */
  async exists(name: string): Promise<boolean> {
    return this.s.settings.get(name) !== undefined || this.s.pushed.get(name) !== undefined;
  }

  /**
   * Repositories (with settings or held by the registry) named after `after`, sorted by name
   * (byte order), at most `limit`.
   */
  async repositories(after: string, limit: number): Promise<EcrRepositoryRow[]> {
    return this.s.page.all({ after, limit }).map(withEcrDefaults);
  }

  /** Creates the repository; false (and nothing written) if a repository of that name exists. */
  async insertRepository(row: NewEcrRepository): Promise<boolean> {
    return this.db.transaction(() => {
      if (this.s.pushed.get(row.name)) return false;
      const inserted =
        this.s.insert.run({
          ...row,
          scanOnPush: row.scanOnPush ? 1 : 0,
          lifecyclePolicyUpdatedAt: row.lifecyclePolicyUpdatedAt ?? null,
        }).changes > 0;
      // The registry's own row too, so that /v2/ (tags/list, the catalog) sees the empty repository.
      if (inserted) this.s.registryRow.run(row.name, row.createdAt);
      return inserted;
    })();
  }

  /**
   * Changes settings of a repository in one transaction (a repository without settings of its
   * own gets them first, with the time of its first push); false if there is no such repository.
   */
  async update(name: string, changes: { readonly [K in EcrSetting]?: SettingValue<K> }): Promise<boolean> {
    return this.db.transaction(() => {
      this.s.adopt.run(name);
      if (this.s.settings.get(name) === undefined) return false;
      for (const [key, value] of Object.entries(changes) as Array<[EcrSetting, unknown]>) {
        if (value !== undefined) this.setters[key].run(typeof value === 'boolean' ? (value ? 1 : 0) : value, name);
      }
      return true;
    })();
  }

  /** Forgets a repository's settings (the repository was deleted). */
  async deleteRepository(name: string): Promise<boolean> {
    return this.s.delete.run(name).changes > 0;
  }

  /** Every repository with a lifecycle policy, sorted. */
  async withLifecyclePolicies(): Promise<string[]> {
    return this.s.withLifecyclePolicies.all();
  }

  // ---- repository creation templates ----

  async template(prefix: string): Promise<CreationTemplateRow | undefined> {
    return this.s.template.get(prefix);
  }

  /** Templates with a prefix after `after`, sorted, at most `limit`. */
  async templates(after: string, limit: number): Promise<CreationTemplateRow[]> {
    return this.s.templates.all(after, limit);
  }

  /** False (and nothing written) if a template has this prefix. */
  async insertTemplate(prefix: string, template: string, now: number): Promise<boolean> {
    return this.s.insertTemplate.run(prefix, template, now, now).changes > 0;
  }

  /** False if no template has this prefix. */
  async updateTemplate(prefix: string, template: string, now: number): Promise<boolean> {
    return this.s.updateTemplate.run(template, now, prefix).changes > 0;
  }

  async deleteTemplate(prefix: string): Promise<boolean> {
    return this.s.deleteTemplate.run(prefix).changes > 0;
  }

  // ---- pull-through cache rules ----

  async pullThroughRule(prefix: string): Promise<PullThroughRuleRow | undefined> {
    return this.s.rule.get(prefix);
  }

  /** Rules with a prefix after `after`, sorted, at most `limit`. */
  async pullThroughRules(after: string, limit: number): Promise<PullThroughRuleRow[]> {
    return this.s.rules.all(after, limit);
  }

  /** False (and nothing written) if a rule has this prefix. */
  async insertPullThroughRule(prefix: string, rule: string, now: number): Promise<boolean> {
    return this.s.insertRule.run(prefix, rule, now, now).changes > 0;
  }

  /** False if no rule has this prefix. */
  async updatePullThroughRule(prefix: string, rule: string, now: number): Promise<boolean> {
    return this.s.updateRule.run(rule, now, prefix).changes > 0;
  }

  async deletePullThroughRule(prefix: string): Promise<boolean> {
    return this.s.deleteRule.run(prefix).changes > 0;
  }

  // ---- registry-wide settings ----

  async setting(name: string): Promise<string | undefined> {
    return this.s.setting.get(name);
  }

  async putSetting(name: string, value: string): Promise<void> {
    this.s.putSetting.run(name, value);
  }

  async deleteSetting(name: string): Promise<boolean> {
    return this.s.deleteSetting.run(name).changes > 0;
  }
}

