/**
 * `ocireg verify [--repair] [--repository R] [config]`: checks that the blob store and the index
 * agree (every blob re-hashed), prints one line per problem, and with --repair mends what it safely
 * can (see src/maintenance/verify.ts). Exit codes: 0 no problems, 1 problems found (repaired or
 * not), or the configuration, the store or the index failed, 2 bad arguments.
 */
import { parseArgs } from 'node:util';
import { loadCommandConfig, openCommandStorage, processOutput, type Output } from './command-io.js';
import { formatBytes } from './gc-command.js';
import { formatProblem, verify, type VerifyProgress, type VerifyReport } from './maintenance/verify.js';
import { isValidName } from './oci/names.js';

export const VERIFY_HELP = `  verify [--repair] [--repository NAME] [config]
                    Check that the store and the index agree: every blob re-hashed, every manifest,
                    link and tag present in both. Prints one line per problem (kind, key or digest,
                    detail, images affected). --repair quarantines corrupt blobs, forgets missing
                    ones and writes links and manifests again from the index (it deletes no bytes).
`;

/** The progress line is rewritten at most this often. */
const PROGRESS_EVERY_MS = 200;


export async function runVerifyCommand(argv: readonly string[], out: Output = processOutput): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { repair: { type: 'boolean' }, repository: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    });
    if (parsed.positionals.length > 1) throw new TypeError(`unexpected arguments: ${parsed.positionals.slice(1).join(' ')}`);
    const name = parsed.values.repository;
    if (name !== undefined && !isValidName(name)) throw new TypeError(`${JSON.stringify(name)} is not a repository name`);
  } catch (err) {
    out.stderr(`${(err as Error).message}\n\nUsage:\n${VERIFY_HELP}`);
    return 2;
  }
  const path = parsed.positionals[0];
  const repair = parsed.values.repair ?? false;
  const repository = parsed.values.repository;
  const config = loadCommandConfig(path, out);
  if (!config) return 1;
  if (repair && config.storage.readOnly) {
    out.stderr('the registry is read-only (storage.maintenance.readonly): nothing can be repaired (run without --repair)\n');
    return 1;
  }
  const opened = await openCommandStorage(config, out);
  if (!opened) return 1;
  const { store, index } = opened;
  const progress = out === processOutput && process.stderr.isTTY ? new ProgressLine(out) : undefined;
  try {
    if (repository !== undefined && (await index.registry.repositoryId(repository)) === undefined) {
      out.stderr(`no repository named ${JSON.stringify(repository)}\n`);
      return 1;
    }
    const report = await verify(store, index.registry, index.gc, {
      repair,
      ...(repository !== undefined ? { repository } : {}),
      onProblem: (p) => {
        progress?.clear();
        out.stdout(`${formatProblem(p)}\n`);
      },
      ...(progress ? { onProgress: (p: VerifyProgress) => progress.update(p) } : {}),
    });
    progress?.clear();
    out.stderr(`${summary(report)}\n`);
    return report.problems > 0 ? 1 : 0;
  } finally {
    progress?.clear();
    await index.close();
    await store.close?.();
  }
}

/** `checked N blobs (X bytes), M manifests, L links, T tags: P problems, R repaired`. */
export function summary(r: VerifyReport): string {
  return `checked ${r.blobs} blob${r.blobs === 1 ? '' : 's'} (${r.bytes} bytes), ${r.manifests} manifest${r.manifests === 1 ? '' : 's'}, ${r.links} link${r.links === 1 ? '' : 's'}, ${r.tags} tag${r.tags === 1 ? '' : 's'}: ${r.problems} problem${r.problems === 1 ? '' : 's'}, ${r.repaired} repaired`;
}

/** A line on a terminal's stderr, rewritten in place (`\r`) at most every PROGRESS_EVERY_MS. */
class ProgressLine {
  private last = 0;
  private width = 0;

  constructor(private readonly out: Output) {}

  update(p: VerifyProgress): void {
    const now = Date.now();
    if (now - this.last < PROGRESS_EVERY_MS) return;
    this.last = now;
    const count = p.total !== undefined ? `${p.done}/${p.total}` : `${p.done}`;
    const text = `verify: ${p.phase} ${count}, ${formatBytes(p.bytes)} hashed`;
    this.out.stderr(`\r${text.padEnd(this.width)}`);
    this.width = text.length;
  }

  /** Blanks the line, so that what is written next starts on a clean one. */
  clear(): void {
    if (this.width === 0) return;
    this.out.stderr(`\r${' '.repeat(this.width)}\r`);
    this.width = 0;
  }
}
