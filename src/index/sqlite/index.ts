import type { Index } from '../contract.js';
import { LocalLocks } from '../local-locks.js';
import { SqliteAccessKeyIndex } from './access-keys.js';
import { openDatabase, type Db } from './database.js';
import { SqliteEcrIndex } from './ecr.js';
import { SqliteGcIndex } from './gc.js';
import { SqliteImageIndex } from './images.js';
import { SqlitePullTimeIndex } from './pull-times.js';
import { SqliteLifecyclePreviewIndex } from './previews.js';
import { SqliteRegistryIndex } from './registry.js';
import { SqliteOutboxIndex } from './outbox.js';

/** The index in one SQLite file (better-sqlite3): the embedded default, for one machine. */
export class SqliteIndex implements Index {
  readonly driver = 'sqlite' as const;
  readonly registry: SqliteRegistryIndex;
  readonly accessKeys: SqliteAccessKeyIndex;
  readonly ecr: SqliteEcrIndex;
  readonly images: SqliteImageIndex;
  readonly pullTimes: SqlitePullTimeIndex;
  readonly previews: SqliteLifecyclePreviewIndex;
  readonly gc: SqliteGcIndex;
  readonly outbox: SqliteOutboxIndex;
  readonly locks = new LocalLocks();
  readonly where: string;

  constructor(readonly db: Db, where = db.name) {
    this.where = where;
    this.registry = new SqliteRegistryIndex(db);
    this.accessKeys = new SqliteAccessKeyIndex(db);
    this.ecr = new SqliteEcrIndex(db);
    this.images = new SqliteImageIndex(db);
    this.pullTimes = new SqlitePullTimeIndex(db);
    this.previews = new SqliteLifecyclePreviewIndex(db);
    this.gc = new SqliteGcIndex(db, () => this.registry.noteTagWrite());
    this.outbox = new SqliteOutboxIndex(db);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

/** Opens (creating and migrating if needed) the SQLite index at `path` (':memory:' for tests). */
export function openSqliteIndex(path: string): SqliteIndex {
  return new SqliteIndex(openDatabase(path), path);
}
