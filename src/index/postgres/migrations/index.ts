import * as m0001 from './0001-initial.js';
import * as m0002 from './0002-access-keys.js';
import * as m0003 from './0003-ecr.js';
import * as m0004 from './0004-gc.js';
import * as m0005 from './0005-notifications.js';
import * as m0006 from './0006-pull-through.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Every schema migration of the PostgreSQL index, oldest first: the same versions and names as
 * SQLite's (src/index/sqlite/migrations), so that both say the same thing of a schema version.
 */
export const MIGRATIONS: readonly Migration[] = [m0001, m0002, m0003, m0004, m0005, m0006];
