/**
 * ECR's pull-through cache rules: a repository prefix whose names are pulled through from an
 * upstream registry (src/proxy/ serves them; this file keeps the rules). A prefix `hub` covers
 * the names under `hub/` (ECR reads it as `hub/`, so `hub` and `hub/` are one rule); `ROOT`
 * covers every name.
 *
 * The rules are the caller's word on where the registry fetches from, so three things are
 * checked here, whoever calls: the upstream must be one of `proxy.allowedupstreams` (the
 * registries ECR supports, by default; nothing else, so that the API cannot point the registry
 * at an arbitrary host), the secret a credentialArn names must be one of `proxy.credentials`
 * (stored as the ARN: the credentials stay in the configuration), and a prefix of the
 * configuration's own `proxy.rules` is the configuration's.
 */
import { ConfigError, upstreamMatches, upstreamUrl, type EcrConfig, type ProxyConfig, type UpstreamConfig } from '../config/config.js';
import type { EcrIndex, PullThroughRuleRow } from '../index/contract.js';
import type { EcrRuleSource, EcrRuleView, UpstreamProbe } from '../proxy/sources.js';
import { EcrError, ecrErrors } from './errors.js';
import type { EcrRepositories } from './repositories.js';

/** The model's UpstreamRegistry values, in its order. */
export const UPSTREAM_REGISTRIES = [
  'ecr',
  'ecr-public',
  'quay',
  'k8s',
  'docker-hub',
  'github-container-registry',
  'azure-container-registry',
  'gitlab-container-registry',
  'chainguard',
] as const;
export type UpstreamRegistry = (typeof UPSTREAM_REGISTRIES)[number];

/** The prefix of the rule that covers every name. */
export const ROOT_PREFIX = 'ROOT';
/** Rules a registry may have (ECR's default quota); past it, LimitExceededException. */
export const MAX_PULL_THROUGH_RULES = 50;

/** What a rule is created with, as the API has it. */
export interface PullThroughRuleSettings {
  /** As given: a host (`registry-1.docker.io`), or ours, `http(s)://host[:port]`. */
  readonly upstreamRegistryUrl: string;
  readonly upstreamRegistry?: UpstreamRegistry;
  readonly credentialArn?: string;
  readonly customRoleArn?: string;
  readonly upstreamRepositoryPrefix?: string;
}

/** What UpdatePullThroughCacheRule may change. */
export interface PullThroughRuleChanges {
  readonly credentialArn?: string;
  readonly customRoleArn?: string;
}

export interface PullThroughRule extends PullThroughRuleSettings {
  /** As it was given (`hub`, `hub/` or `ROOT`). */
  readonly ecrRepositoryPrefix: string;
  /** The upstream's base URL, `scheme://host[:port]`. */
  readonly upstreamUrl: string;
  /** ms since the epoch */
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** ValidatePullThroughCacheRule's verdict on a rule. */
export interface RuleValidation {
  readonly rule: PullThroughRule;
  readonly isValid: boolean;
  /** Why not, when not valid. */
  readonly failure?: string;
}

/** A probe for apps that have none: every rule is reported as not validated. */
export const NO_PROBE: UpstreamProbe = async () => ({ ok: false, reason: 'no upstream probe' });

/** Rules read per index query by all(). */
const PAGE = 500;

export class PullThroughRules implements EcrRuleSource {
  constructor(
    private readonly index: EcrIndex,
    private readonly ecr: EcrConfig,
    private readonly proxy: ProxyConfig,
    private readonly probe: UpstreamProbe,
    private readonly repositories: Pick<EcrRepositories, 'createForPullThrough'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Called once a rule was created, changed or deleted here: the cache reads the rules anew (other nodes see it within seconds). */
  onChange: () => void = () => undefined;

  // ---- EcrRuleSource (src/proxy/) ----

  /** Every rule, as the cache needs it: the prefix without its `/`, the upstream's URL, the credentials' name. */
  async all(): Promise<EcrRuleView[]> {
    const views: EcrRuleView[] = [];
    for (let after = ''; ; ) {
      const rows = await this.index.pullThroughRules(after, PAGE);
      for (const row of rows) views.push(this.view(row.prefix, toRule(row)));
      if (rows.length < PAGE) return views;
      after = rows[rows.length - 1]!.prefix;
    }
  }

  /** The repository of a first pull under a rule, created as ECR creates it (a PULL_THROUGH_CACHE template's settings). */
  ensureRepository(name: string): Promise<void> {
    return this.repositories.createForPullThrough(name);
  }

  // ---- the API's operations ----

  async get(prefix: string): Promise<PullThroughRule | undefined> {
    const row = await this.index.pullThroughRule(ruleKey(prefix));
    return row ? toRule(row) : undefined;
  }

  /** The rule, or PullThroughCacheRuleNotFoundException. */
  async require(prefix: string): Promise<PullThroughRule> {
    const rule = await this.get(prefix);
    if (!rule) throw pullThroughErrors.notFound(prefix, this.ecr.accountId);
    return rule;
  }

  /** The rules of these prefixes (one each, in the order given); PullThroughCacheRuleNotFoundException for a prefix without one. */
  async describe(prefixes: readonly string[]): Promise<PullThroughRule[]> {
    const keys = [...new Map(prefixes.map((p) => [ruleKey(p), p])).values()];
    const found: PullThroughRule[] = [];
    for (const prefix of keys) found.push(await this.require(prefix));
    return found;
  }

  /** Rules after the key `after` (a prefix without its trailing `/`), sorted, at most `limit`. */
  async list(after: string, limit: number): Promise<PullThroughRule[]> {
    return (await this.index.pullThroughRules(after, limit)).map(toRule);
  }

  /**
   * Creates a rule. UnsupportedUpstreamRegistryException for an upstream outside
   * proxy.allowedupstreams, SecretNotFoundException for a secret outside proxy.credentials,
   * PullThroughCacheRuleAlreadyExistsException for a prefix that a rule (of the API or of the
   * configuration) has, LimitExceededException past MAX_PULL_THROUGH_RULES.
   */
  async create(prefix: string, settings: PullThroughRuleSettings): Promise<PullThroughRule> {
    const key = ruleKey(prefix);
    if (key === ROOT_PREFIX && settings.upstreamRepositoryPrefix !== undefined && ruleKey(settings.upstreamRepositoryPrefix) !== ROOT_PREFIX) {
      throw ecrErrors.invalidParameter("Invalid parameter: upstreamRepositoryPrefix can only be set when ecrRepositoryPrefix is not 'ROOT'");
    }
    const url = this.allowedUpstream(settings.upstreamRegistryUrl);
    if (settings.credentialArn !== undefined) this.credentialName(settings.credentialArn, url);
    if (this.proxy.rules.some((r) => r.prefix !== '' && r.prefix === key)) throw pullThroughErrors.configured(prefix);
    if ((await this.index.pullThroughRules('', MAX_PULL_THROUGH_RULES)).length >= MAX_PULL_THROUGH_RULES) {
      if (!(await this.index.pullThroughRule(key))) throw pullThroughErrors.limit();
    }
    const upstreamRegistry = settings.upstreamRegistry ?? knownRegistry(url);
    const stored: StoredRule = {
      ...settings,
      ...(upstreamRegistry ? { upstreamRegistry } : {}),
      ecrRepositoryPrefix: prefix,
      upstreamUrl: url,
    };
    if (!(await this.index.insertPullThroughRule(key, JSON.stringify(stored), this.now()))) {
      throw pullThroughErrors.alreadyExists(prefix, this.ecr.accountId);
    }
    this.onChange();
    return this.require(prefix);
  }

  /** Changes the credentials' secret or the role; PullThroughCacheRuleNotFoundException, SecretNotFoundException. */
  async update(prefix: string, changes: PullThroughRuleChanges): Promise<PullThroughRule> {
    const current = await this.require(prefix);
    if (changes.credentialArn !== undefined) this.credentialName(changes.credentialArn, current.upstreamUrl);
    const { createdAt: _created, updatedAt: _updated, ...stored } = current;
    const defined = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined));
    if (!(await this.index.updatePullThroughRule(ruleKey(prefix), JSON.stringify({ ...stored, ...defined }), this.now()))) {
      throw pullThroughErrors.notFound(prefix, this.ecr.accountId);
    }
    this.onChange();
    return this.require(prefix);
  }

  /** Removes the rule and returns it; PullThroughCacheRuleNotFoundException if there is none. */
  async delete(prefix: string): Promise<PullThroughRule> {
    const current = await this.require(prefix);
    if (!(await this.index.deletePullThroughRule(ruleKey(prefix)))) throw pullThroughErrors.notFound(prefix, this.ecr.accountId);
    this.onChange();
    return current;
  }

  /**
   * Asks the probe whether the rule's upstream answers with its credentials. A failure is the
   * verdict (isValid false, with the reason), not an error; PullThroughCacheRuleNotFoundException
   * if there is no rule.
   */
  async validate(prefix: string): Promise<RuleValidation> {
    const rule = await this.require(prefix);
    let upstream: UpstreamConfig;
    try {
      upstream = this.upstreamOf(rule);
    } catch (err) {
      if (err instanceof EcrError) return { rule, isValid: false, failure: err.message };
      throw err;
    }
    let verdict: Awaited<ReturnType<UpstreamProbe>>;
    try {
      verdict = await this.probe(upstream);
    } catch (err) {
      verdict = { ok: false, reason: `the upstream could not be reached: ${(err as Error).message}` };
    }
    return verdict.ok ? { rule, isValid: true } : { rule, isValid: false, failure: verdict.reason };
  }

  // ---- internals ----

  /** The upstream the rule reads from, with its credentials from proxy.credentials. */
  private upstreamOf(rule: PullThroughRule): UpstreamConfig {
    const name = rule.credentialArn !== undefined ? this.credentialName(rule.credentialArn, rule.upstreamUrl) : undefined;
    const credentials = name !== undefined ? this.proxy.credentials[name] : undefined;
    return {
      url: rule.upstreamUrl,
      dockerHub: rule.upstreamRegistry === 'docker-hub' || new URL(rule.upstreamUrl).hostname === 'registry-1.docker.io',
      ...(credentials ? { username: credentials.username, password: credentials.password } : {}),
    };
  }

  private view(key: string, rule: PullThroughRule): EcrRuleView {
    const upstreamPrefix = rule.upstreamRepositoryPrefix !== undefined ? ruleKey(rule.upstreamRepositoryPrefix) : undefined;
    let credentialName: string | undefined;
    if (rule.credentialArn !== undefined) {
      // A secret the configuration no longer has keeps its name from the ARN: the cache finds no credentials for it.
      credentialName = this.findCredential(rule.credentialArn) ?? secretNames(rule.credentialArn)[0];
    }
    return {
      ecrRepositoryPrefix: key,
      upstreamUrl: rule.upstreamUrl,
      ...(upstreamPrefix !== undefined && upstreamPrefix !== ROOT_PREFIX ? { upstreamRepositoryPrefix: upstreamPrefix } : {}),
      ...(credentialName !== undefined ? { credentialName } : {}),
    };
  }

  /** `scheme://host[:port]` of an upstreamRegistryUrl, if proxy.allowedupstreams has it; UnsupportedUpstreamRegistryException if not. */
  private allowedUpstream(text: string): string {
    let url: string;
    try {
      url = upstreamUrl(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`, 'upstreamRegistryUrl');
    } catch (err) {
      if (err instanceof ConfigError) throw ecrErrors.invalidParameter(`Invalid parameter at 'upstreamRegistryUrl': ${err.message.replace(/^upstreamRegistryUrl: /, '')}`);
      throw err;
    }
    if (!this.proxy.allowedUpstreams.some((entry) => upstreamMatches(entry, url))) throw pullThroughErrors.unsupported(text);
    return url;
  }

  /** The proxy.credentials entry a credentialArn names; SecretNotFoundException if none. */
  /**
   * The proxy.credentials entry a credentialArn names; SecretNotFoundException if none,
   * UnableToAccessSecretException if the entry names its upstreams and `url` is not one of them.
   */
  private credentialName(arn: string, url: string): string {
    const name = this.findCredential(arn);
    if (name === undefined) throw pullThroughErrors.secretNotFound(arn);
    const upstreams = this.proxy.credentials[name]!.upstreams;
    if (upstreams && !upstreams.some((entry) => upstreamMatches(entry, url))) throw pullThroughErrors.secretNotForUpstream(arn, url);
    return name;
  }

  private findCredential(arn: string): string | undefined {
    return secretNames(arn).find((n) => Object.hasOwn(this.proxy.credentials, n));
  }
}

/** A rule's key: ECR reads `hub` as `hub/`, so both name one rule. */
export function ruleKey(prefix: string): string {
  return prefix !== ROOT_PREFIX && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
}

/**
 * The names under which proxy.credentials may hold a credentialArn's secret, best first: the
 * name after `ecr-pullthroughcache/`, then the whole secret name, then both without the
 * `-XXXXXX` that Secrets Manager appends to the names in its ARNs.
 */
export function secretNames(arn: string): string[] {
  const m = /:secret:(ecr-pullthroughcache\/(.+))$/.exec(arn);
  if (!m) return [];
  const [, full, short] = m as unknown as [string, string, string];
  const names = [short, full];
  for (const n of [short, full]) {
    const bare = n.replace(/-[A-Za-z0-9]{6}$/, '');
    if (bare !== n && bare !== '' && !bare.endsWith('/')) names.push(bare);
  }
  return [...new Set(names)];
}

/** The UpstreamRegistry a URL of one of ECR's upstreams is. */
function knownRegistry(url: string): UpstreamRegistry | undefined {
  const u = new URL(url);
  if (u.protocol !== 'https:' || u.port !== '') return undefined;
  const host = u.hostname;
  const exact: Readonly<Record<string, UpstreamRegistry>> = {
    'registry-1.docker.io': 'docker-hub',
    'public.ecr.aws': 'ecr-public',
    'quay.io': 'quay',
    'registry.k8s.io': 'k8s',
    'ghcr.io': 'github-container-registry',
    'registry.gitlab.com': 'gitlab-container-registry',
    'cgr.dev': 'chainguard',
  };
  if (Object.hasOwn(exact, host)) return exact[host];
  if (host.endsWith('.azurecr.io')) return 'azure-container-registry';
  if (/^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com$/.test(host)) return 'ecr';
  return undefined;
}

/** ECR's PullThroughCacheRule shape of the API (times in epoch seconds). */
export function ruleShape(rule: PullThroughRule, registryId: string): object {
  return {
    ecrRepositoryPrefix: rule.ecrRepositoryPrefix,
    upstreamRegistryUrl: rule.upstreamRegistryUrl,
    createdAt: rule.createdAt / 1000,
    registryId,
    ...ruleOptions(rule),
    ...(rule.upstreamRegistry !== undefined ? { upstreamRegistry: rule.upstreamRegistry } : {}),
    updatedAt: rule.updatedAt / 1000,
  };
}

/** The members a rule has only when they were given. */
export function ruleOptions(rule: PullThroughRule): object {
  return {
    ...(rule.credentialArn !== undefined ? { credentialArn: rule.credentialArn } : {}),
    ...(rule.customRoleArn !== undefined ? { customRoleArn: rule.customRoleArn } : {}),
    ...(rule.upstreamRepositoryPrefix !== undefined ? { upstreamRepositoryPrefix: rule.upstreamRepositoryPrefix } : {}),
  };
}

export const pullThroughErrors = {
  alreadyExists: (prefix: string, registryId: string) =>
    new EcrError(
      'PullThroughCacheRuleAlreadyExistsException',
      `A pull through cache rule with prefix '${prefix}' already exists in the registry with id '${registryId}'`,
    ),
  configured: (prefix: string) =>
    new EcrError(
      'PullThroughCacheRuleAlreadyExistsException',
      `The prefix '${prefix}' is a pull-through rule of the registry's configuration (proxy.rules), which takes precedence over the API's rules; choose another prefix`,
    ),
  notFound: (prefix: string, registryId: string) =>
    new EcrError(
      'PullThroughCacheRuleNotFoundException',
      `The pull through cache rule with prefix '${prefix}' does not exist in the registry with id '${registryId}'`,
    ),
  unsupported: (url: string) =>
    new EcrError(
      'UnsupportedUpstreamRegistryException',
      `The upstream registry '${url}' is not supported: upstreamRegistryUrl must be one of the registry's allowed upstreams (proxy.allowedupstreams)`,
    ),
  secretNotForUpstream: (arn: string, url: string) =>
    new EcrError(
      'UnableToAccessSecretException',
      `The secret '${arn}' may not be sent to ${url}: its proxy.credentials entry names the upstreams it is for, and this is not one of them`,
    ),
  secretNotFound: (arn: string) =>
    new EcrError(
      'SecretNotFoundException',
      `The secret '${arn}' was not found: the registry's configuration has no such entry in proxy.credentials`,
    ),
  limit: () =>
    new EcrError(
      'LimitExceededException',
      `The registry has ${MAX_PULL_THROUGH_RULES} pull through cache rules, the most it can have; delete one first`,
    ),
};

type StoredRule = Omit<PullThroughRule, 'createdAt' | 'updatedAt'>;

function toRule(row: PullThroughRuleRow): PullThroughRule {
  return { ...(JSON.parse(row.rule) as StoredRule), createdAt: row.createdAt, updatedAt: row.updatedAt };
}
