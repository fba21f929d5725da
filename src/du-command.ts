/**
 * `ocireg du [NAME] [config]`: the space each repository's images hold, read from the index
 * (the registry running or not; the store is not opened). Exit codes: 0 done, 1 the
 * configuration or the index failed or NAME is not a repository, 2 bad arguments.
 */
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadCommandConfig, openCommandIndex, processOutput, type Output } from './command-io.js';
import { formatBytes } from './gc-command.js';
import type { GcIndex, UsageRow } from './index/contract.js';
import { keysetPages } from './index/pages.js';
import { isValidName } from './oci/names.js';

export const DU_HELP = `  du [NAME] [--bytes] [--config FILE | config]
                    The space each repository's images hold (or NAME's): manifests, distinct blobs,
                    their size, the part no other repository holds (UNIQUE: what deleting the
                    repository frees) and the part others hold too (SHARED); then a TOTAL line
                    counting each blob once. --bytes prints exact byte counts.
`;


/** Blob rows read per page while the total is summed. */
const PAGE = 1000;

interface DuArgs {
  readonly name?: string;
  readonly configPath?: string;
  readonly bytes: boolean;
}

export async function runDuCommand(argv: readonly string[], out: Output = processOutput): Promise<number> {
  let args: DuArgs;
  try {
    args = parseDuArgs(argv);
  } catch (err) {
    out.stderr(`${(err as Error).message}\n\nUsage:\n${DU_HELP}`);
    return 2;
  }
  const config = loadCommandConfig(args.configPath, out);
  if (!config) return 1;
  const index = await openCommandIndex(config, out);
  if (!index) return 1;
  try {
    // A name no repository can have is not asked for (PostgreSQL would refuse a NUL in it).
    const rows = args.name !== undefined && !isValidName(args.name) ? [] : await index.gc.usage(args.name);
    if (args.name !== undefined && rows.length === 0) {
      out.stderr(`no repository named ${JSON.stringify(args.name)}\n`);
      return 1;
    }
    const size = args.bytes ? String : formatBytes;
    const lines = rows.map((r) => usageLine(r, size));
    if (args.name === undefined) lines.push(totalLine(rows, await heldTotal(index.gc, Date.now()), size));
    out.stdout(table([['REPOSITORY', 'MANIFESTS', 'BLOBS', 'SIZE', 'UNIQUE', 'SHARED'], ...lines]));
    return 0;
  } finally {
    await index.close();
  }
}

/**
 * One positional: the config if it names an existing file, else the repository. Two: the
 * repository, then the config. `--config FILE` names the config; a positional is then the repository.
 */
function parseDuArgs(argv: readonly string[]): DuArgs {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: { bytes: { type: 'boolean' }, config: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  const bytes = values.bytes ?? false;
  const limit = values.config !== undefined ? 1 : 2;
  if (positionals.length > limit) throw new TypeError(`unexpected arguments: ${positionals.slice(limit).join(' ')}`);
  if (values.config !== undefined) return { bytes, configPath: values.config, ...(positionals[0] !== undefined ? { name: positionals[0] } : {}) };
  const [first, second] = positionals;
  if (second !== undefined) return { bytes, name: first!, configPath: second };
  if (first === undefined) return { bytes };
  return isFile(first) ? { bytes, configPath: first } : { bytes, name: first };
}

function isFile(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isFile() ?? false;
}

type Cells = readonly [string, string, string, string, string, string];

function usageLine(r: UsageRow, size: (n: number) => string): Cells {
  return [r.repository, String(r.manifests), String(r.blobs), size(r.bytes), size(r.uniqueBytes), size(r.sharedBytes)];
}

/**
 * The TOTAL line: every manifest, and the distinct blobs any repository holds with their bytes
 * (a blob several repositories hold counts once, so SIZE is not the sum of the lines). Of those,
 * UNIQUE are the blobs one repository alone holds and SHARED the rest, each counted once.
 */
function totalLine(rows: readonly UsageRow[], held: { blobs: number; bytes: number }, size: (n: number) => string): Cells {
  const manifests = rows.reduce((sum, r) => sum + r.manifests, 0);
  const unique = rows.reduce((sum, r) => sum + r.uniqueBytes, 0);
  return ['TOTAL', String(manifests), String(held.blobs), size(held.bytes), size(unique), size(Math.max(0, held.bytes - unique))];
}

/**
 * The distinct blobs that any repository's manifests hold (the manifests' own bytes and the
 * blobs they reference, as usage() counts them), and their bytes. The usage rows cannot give it:
 * a shared blob is in the SHARED column of every repository holding it, and how many those are
 * is not in the rows. So it is read from the index in two streams in digest order, merged:
 * every blob row (`blobs`), and the live, unheld rows that nothing references and that are no
 * manifest (`unreferencedBlobs` with no age limit). A live, unheld row is held by a repository
 * exactly when it is not in the second stream. The other rows are few and short-lived: a
 * candidate or a blob being deleted was unreferenced when the collector marked it (a manifest
 * push that references a candidate takes it back), and a row held by a write in flight counts
 * when a manifest references it (usersOf). With writes going on, the streams are read at
 * slightly different moments: the total is as exact as a `du` of a live filesystem.
 */
async function heldTotal(gc: GcIndex, now: number): Promise<{ blobs: number; bytes: number }> {
  const unreferenced = pages((after) => gc.unreferencedBlobs(Number.MAX_SAFE_INTEGER, now, after, PAGE));
  let next = await unreferenced.next();
  let blobs = 0;
  let bytes = 0;
  for await (const row of pages((after) => gc.blobs(after, PAGE))) {
    let held: boolean;
    if (row.state !== 'live') held = false;
    else if (row.heldUntil !== null && row.heldUntil > now) held = (await gc.usersOf(row.digest)).length > 0;
    else {
      while (!next.done && next.value.digest < row.digest) next = await unreferenced.next();
      held = next.done || next.value.digest !== row.digest;
    }
    if (held) {
      blobs++;
      bytes += row.size;
    }
  }
  return { blobs, bytes };
}

/** The rows of a keyset-paged query by digest, in order, PAGE rows a query. */
function pages<T extends { digest: string }>(page: (after: string) => Promise<T[]>): AsyncGenerator<T> {
  return keysetPages(page, '', (row) => row.digest, PAGE);
}

/** Aligned columns: the repository left-aligned, the numbers right-aligned. */
function table(lines: readonly Cells[]): string {
  const widths = lines[0]!.map((_, col) => Math.max(...lines.map((l) => l[col]!.length)));
  return lines
    .map((l) => l.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  '))
    .join('\n')
    .concat('\n');
}
