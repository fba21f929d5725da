import type { IndexConfig } from '../config/config.js';
import type { Index } from './contract.js';
import { openSqliteIndex } from './sqlite/index.js';

/** The index that the configuration names: the SQLite file, or the PostgreSQL database (checked and migrated). */
export async function openIndex(config: IndexConfig): Promise<Index> {
  try {
    if (config.driver === 'sqlite') return openSqliteIndex(config.path);
    // Loaded only when asked for: a registry on SQLite never loads the PostgreSQL client.
    const { openPostgresIndex } = await import('./postgres/index.js');
    return await openPostgresIndex(config.postgres!);
  } catch (err) {
    throw new IndexOpenError(`cannot open the index ${describeIndex(config)}: ${(err as Error).message}`);
  }
}

/** The index could not be opened (unreachable, refused, newer schema...): a message for one line. */
export class IndexOpenError extends Error {
  override name = 'IndexOpenError';
}

/** Where the index is, for messages: the SQLite file, or the database without its password. */
export function describeIndex(config: IndexConfig): string {
  if (config.driver === 'sqlite') return config.path;
  const pg = config.postgres!;
  if (pg.url) {
    try {
      const url = new URL(pg.url);
      url.password = '';
      url.search = '';
      return url.toString();
    } catch {
      return 'the PostgreSQL database';
    }
  }
  return `postgres://${pg.user ? `${pg.user}@` : ''}${pg.host}${pg.port ? `:${pg.port}` : ''}/${pg.database ?? ''}`;
}
