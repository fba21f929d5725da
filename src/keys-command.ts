/**
 * `ocireg keys create|list|revoke`: access keys (robot accounts) in the index named by the
 * configuration. Exit codes: 0 done, 1 the configuration or the index failed (or no such key),
 * 2 bad arguments.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AccessKeyError, AccessKeys, type AccessKeyInfo } from './auth/access-keys.js';
import { parseHtpasswd } from './auth/htpasswd.js';
import { parseGrant, ScopeError } from './auth/scope.js';
import type { ScopeGrant } from './auth/types.js';
import { processOutput, type Output } from './command-io.js';
import { ConfigError, loadConfig, type Config } from './config/config.js';
import { parseDuration } from './config/duration.js';
import { describeIndex, openIndex } from './index/open-index.js';

export const KEYS_HELP = `  keys create --user USER --scope SCOPE [--scope SCOPE ...] [--expires 30d] [--description TEXT]
                    Make an access key for USER limited to the scopes (repository:app/*:pull,push,
                    registry:catalog:*). Prints the secret alone on stdout (SECRET=$(ocireg keys create ...));
                    the key's id and a reminder go to stderr. The secret cannot be shown again.
                    --expires takes a duration such as 30d, 12h or 90m (default: never).
  keys list         List the access keys: id, user, scopes, description, created, expires, last used, revoked
  keys revoke ID    Revoke an access key; clients using it are refused from then on
                    Every keys command takes --config FILE (default: REGISTRY_CONFIGURATION_PATH).
`;

/** Bad arguments: exit code 2. */
class UsageError extends Error {
  override name = 'UsageError';
}


const CONFIG_OPTION = { config: { type: 'string' } } as const;
const CREATE_OPTIONS = {
  ...CONFIG_OPTION,
  user: { type: 'string' },
  scope: { type: 'string', multiple: true },
  expires: { type: 'string' },
  description: { type: 'string' },
} as const;

/** Runs `ocireg keys <argv...>` and returns the exit code. */
export async function runKeysCommand(argv: readonly string[], out: Output = processOutput): Promise<number> {
  const [sub, ...args] = argv;
  try {
    switch (sub) {
      case 'create':
        return await create(args, out);
      case 'list':
        return await list(args, out);
      case 'revoke':
        return await revoke(args, out);
      default:
        throw new UsageError(
          sub === undefined ? 'keys: name a subcommand: create, list or revoke' : `keys: unknown subcommand ${JSON.stringify(sub)}; expected create, list or revoke`,
        );
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof ScopeError || err instanceof AccessKeyError) {
      out.stderr(`${err.message}\n\nUsage:\n${KEYS_HELP}`);
      return 2;
    }
    if (err instanceof ConfigError) {
      out.stderr(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

async function create(args: readonly string[], out: Output): Promise<number> {
  const { values } = parse('keys create', args, CREATE_OPTIONS, 0);
  if (values.user === undefined || values.user === '') throw new UsageError('keys create: --user is required');
  const scopeTexts = values.scope ?? [];
  if (scopeTexts.length === 0) throw new UsageError('keys create: name at least one --scope, such as repository:app/*:pull');
  const scopes: ScopeGrant[] = scopeTexts.map((s) => parseGrant(s));
  const expiresInMs = values.expires === undefined ? undefined : parseExpiry(values.expires);

  const config = loadConfig(values.config !== undefined ? { path: values.config } : {});
  await warnUnknownUser(config, values.user, out);
  return withKeys(config, async (keys) => {
    const { id, secret } = await keys.create({
      user: values.user!,
      scopes,
      ...(expiresInMs !== undefined ? { expiresAt: Date.now() + expiresInMs } : {}),
      ...(values.description !== undefined ? { description: values.description } : {}),
    });
    out.stdout(`${secret}\n`);
    out.stderr(`created access key ${id} for user ${values.user}; the secret above cannot be shown again\n`);
    return 0;
  });
}

async function list(args: readonly string[], out: Output): Promise<number> {
  const { values } = parse('keys list', args, CONFIG_OPTION, 0);
  const config = loadConfig(values.config !== undefined ? { path: values.config } : {});
  return withKeys(config, async (keys) => {
    out.stdout(formatTable(await keys.list()));
    return 0;
  });
}

async function revoke(args: readonly string[], out: Output): Promise<number> {
  const { values, positionals } = parse('keys revoke', args, CONFIG_OPTION, 1);
  const id = positionals[0]!;
  const config = loadConfig(values.config !== undefined ? { path: values.config } : {});
  return withKeys(config, async (keys) => {
    if (!(await keys.revoke(id))) {
      out.stderr(`no access key ${JSON.stringify(id)} in ${describeIndex(config.index)}\n`);
      return 1;
    }
    out.stdout(`revoked access key ${id}\n`);
    return 0;
  });
}

function parse<O extends NonNullable<ParseArgsConfig['options']>>(what: string, args: readonly string[], options: O, positionals: number) {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${what}: ${(err as Error).message}`);
  }
  if (parsed.positionals.length !== positionals) {
    const extra = parsed.positionals.slice(positionals);
    throw new UsageError(
      extra.length > 0 ? `${what}: unexpected argument ${JSON.stringify(extra[0])}` : `${what}: expected ${positionals} argument(s)`,
    );
  }
  return parsed;
}

/** `30d`, `12h`, `90m`, `1d12h`: durations of duration.ts plus days, greater than zero. */
export function parseExpiry(text: string): number {
  const days = /^(\d+)d(.*)$/.exec(text.trim());
  let ms: number;
  try {
    ms = days ? Number(days[1]) * 86_400_000 + (days[2] ? parseDuration(days[2]) : 0) : parseDuration(text);
  } catch {
    throw new UsageError(`keys create: --expires ${JSON.stringify(text)}: expected a duration such as 30d, 12h or 90m`);
  }
  if (!(ms > 0) || !Number.isSafeInteger(Math.round(ms))) {
    throw new UsageError(`keys create: --expires ${JSON.stringify(text)}: the duration must be greater than zero`);
  }
  return Math.round(ms);
}

/** A key for a user the htpasswd file does not list cannot sign in (the user must exist): say so. */
async function warnUnknownUser(config: Config, user: string, out: Output): Promise<void> {
  const path = config.auth?.htpasswd?.path;
  if (path === undefined) return;
  let users: Map<string, unknown>;
  try {
    users = parseHtpasswd(await readFile(path, 'utf8'), path);
  } catch (err) {
    out.stderr(`warning: cannot check user ${JSON.stringify(user)} against ${path}: ${(err as Error).message}\n`);
    return;
  }
  if (!users.has(user)) {
    out.stderr(`warning: user ${JSON.stringify(user)} is not in ${path}; the key works only once the user is added\n`);
  }
}

async function withKeys(config: Config, work: (keys: AccessKeys) => Promise<number>): Promise<number> {
  const index = await openIndex(config.index);
  try {
    return await work(new AccessKeys(index.accessKeys));
  } finally {
    await index.close();
  }
}

const HEADINGS = ['ID', 'USER', 'SCOPES', 'DESCRIPTION', 'CREATED', 'EXPIRES', 'LAST USED', 'REVOKED'];

/** A table of keys, columns padded with spaces; times in UTC to the second, `-` when absent. */
export function formatTable(keys: readonly AccessKeyInfo[]): string {
  const time = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'));
  const rows = keys.map((k) => [
    k.id,
    k.user,
    k.scopes.join(' '),
    k.description === null || k.description === '' ? '-' : k.description.replace(/[\x00-\x1f\x7f]+/g, ' '),
    time(k.createdAt),
    time(k.expiresAt),
    time(k.lastUsedAt),
    time(k.revokedAt),
  ]);
  const all = [HEADINGS, ...rows];
  const widths = HEADINGS.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ') + '\n').join('');
}
