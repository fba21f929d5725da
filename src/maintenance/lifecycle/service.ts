/**
 * Lifecycle policies over the registry: a preview and a run are the same plan (the pure
 * evaluator over the repository's images), so a preview shows exactly what a run expires.
 * Runs happen on a schedule (ecr.lifecycle.interval) and on demand (`ocireg lifecycle run`).
 * Expiring an image removes its manifest and tags; its content goes when garbage is collected.
 *
 * Pull times (for sinceImagePulled) are read through the registry's PullTimes, which counts the
 * pulls this node has not written yet, so no flush is needed first and a preview reads them
 * exactly as a run does. Pulls served by another node reach the index within that node's flush
 * window (seconds; ECR's own lastRecordedPullTime may lag by up to a day). A run re-reads the
 * pull time of each image a pull rule would expire, and keeps one pulled since the plan.
 */
import type { LifecyclePreviewIndex, PreviewStatus } from '../../index/contract.js';
import type { Registry } from '../../registry/registry.js';
import { Digest } from '../../oci/digest.js';
import { evaluateLifecycle, type Expiration, type ImageFacts } from './evaluate.js';
import { parseLifecyclePolicy, type LifecyclePolicy } from './policy.js';

export interface LifecycleSources {
  /** The repository's lifecycle policy text, if it has one. */
  policyOf(repo: string): Promise<string | undefined>;
  /** Every repository that has a lifecycle policy, sorted. */
  repositoriesWithPolicies(): Promise<string[]>;
  /** The images the lifecycle considers in a repository. */
  images(repo: string): Promise<ImageFacts[]>;
  /** Whether a manifest of the repository lists the image (it then goes only with that manifest). */
  referenced(repo: string, digest: string): Promise<boolean>;
  /** Notes that the repository's policy was applied (its lastEvaluatedAt). */
  evaluated(repo: string, at: number): Promise<void>;
}

export type { PreviewStatus };

export interface Preview {
  readonly repository: string;
  readonly policyText: string;
  readonly status: PreviewStatus;
  readonly expirations: readonly Expiration[];
  readonly startedAt: number;
}

export interface RunReport {
  readonly repository: string;
  /** What the plan expires (dry run) or what was expired. */
  readonly expired: readonly Expiration[];
  /** Images of the plan left alone because they changed since it was made (a tag moved onto them, or a pull kept them). */
  readonly skipped: readonly Expiration[];
  readonly dryRun: boolean;
}

/** How long a preview's result stays readable (ECR keeps them for a while, then says EXPIRED). */
const PREVIEW_LIFETIME_MS = 24 * 60 * 60 * 1000;

export class LifecycleService {
  private readonly previews: LifecyclePreviewIndex;

  constructor(
    private readonly registry: Registry,
    private readonly sources: LifecycleSources,
    private readonly now: () => number = Date.now,
  ) {
    this.previews = registry.database.previews;
  }

  /** What the policy would expire in the repository now. Throws LifecyclePolicyError for a bad policy. */
  async plan(repo: string, policyText: string): Promise<Expiration[]> {
    return (await this.planWith(repo, policyText)).plan;
  }

  /** The plan, and the policy it was made from. */
  private async planWith(repo: string, policyText: string): Promise<{ policy: LifecyclePolicy; plan: Expiration[] }> {
    // Parsed before the images are read: a bad policy fails without a query.
    const policy = parseLifecyclePolicy(policyText);
    return { policy, plan: evaluateLifecycle(policy, await this.sources.images(repo), this.now()) };
  }

  /** Computes and keeps a preview of the policy (the repository's own when none is given). */
  async startPreview(repo: string, policyText: string): Promise<Preview> {
    const expirations = await this.plan(repo, policyText);
    const startedAt = this.now();
    await this.previews.save({ repository: repo, policy: policyText, status: 'COMPLETE', result: JSON.stringify(expirations), startedAt });
    return { repository: repo, policyText, status: 'COMPLETE', expirations, startedAt };
  }

  /** The repository's last preview, EXPIRED once it is older than a day. */
  async preview(repo: string): Promise<Preview | undefined> {
    const row = await this.previews.get(repo);
    if (!row) return undefined;
    const expired = this.now() - row.startedAt > PREVIEW_LIFETIME_MS;
    return {
      repository: repo,
      policyText: row.policy,
      status: expired ? 'EXPIRED' : row.status,
      expirations: expired || row.result === null ? [] : (JSON.parse(row.result) as Expiration[]),
      startedAt: row.startedAt,
    };
  }

  /** Forgets a repository's preview (the repository was deleted). */
  forget(repo: string): Promise<void> {
    return this.previews.forget(repo);
  }

  /**
   * Applies the policies: of one repository, or of every repository that has one. A repository
   * whose policy no longer parses is reported in `failed` and left alone.
   */
  async run(options: { repository?: string; dryRun?: boolean } = {}): Promise<{ reports: RunReport[]; failed: Array<{ repository: string; reason: string }> }> {
    const dryRun = options.dryRun ?? false;
    const repos = options.repository !== undefined ? [options.repository] : await this.sources.repositoriesWithPolicies();
    const reports: RunReport[] = [];
    const failed: Array<{ repository: string; reason: string }> = [];
    for (const repo of repos) {
      const text = await this.sources.policyOf(repo);
      if (text === undefined) continue;
      let policy: LifecyclePolicy;
      let plan: Expiration[];
      try {
        ({ policy, plan } = await this.planWith(repo, text));
      } catch (err) {
        failed.push({ repository: repo, reason: (err as Error).message });
        continue;
      }
      if (dryRun) {
        reports.push({ repository: repo, expired: plan, skipped: [], dryRun });
        continue;
      }
      const byPull = new Set(policy.rules.filter((r) => r.selection.countType === 'sinceImagePulled').map((r) => r.rulePriority));
      const expired: Expiration[] = [];
      const skipped: Expiration[] = [];
      for (const image of plan) {
        // An image planned for not being pulled that has been pulled since is in use: kept.
        if (byPull.has(image.rulePriority) && (await this.pulledSince(repo, image))) {
          skipped.push(image);
          continue;
        }
        // Under the repository's write lock, and only if its tags are still those the plan saw and
        // no index lists it (checked in the index's transaction): a push that moved a tag onto it,
        // or an index pushed since the plan was made, keeps it.
        const done = await this.registry.manifests.deleteIf(
          repo,
          Digest.parse(image.digest),
          (tags, parents) => parents.length === 0 && sameTags(tags, image.tags),
        );
        (done ? expired : skipped).push(image);
      }
      reports.push({ repository: repo, expired, skipped, dryRun });
      await this.sources.evaluated(repo, this.now());
    }
    return { reports, failed };
  }

  /** Whether the image has a pull recorded later than the one its plan saw. */
  private async pulledSince(repo: string, image: Expiration): Promise<boolean> {
    const pulled = await this.registry.pulls.lastPulled(repo, image.digest);
    return pulled !== undefined && pulled > (image.lastPulledAt ?? Number.NEGATIVE_INFINITY);
  }
}

function sameTags(now: readonly string[], planned: readonly string[]): boolean {
  if (now.length !== planned.length) return false;
  const set = new Set(planned);
  return now.every((t) => set.has(t));
}
