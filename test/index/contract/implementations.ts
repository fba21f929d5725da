/**
 * The implementations of the index contract (src/index/contract.ts) that the suite in this folder
 * runs over: SQLite in memory, and PostgreSQL on a database of its own on the test server. Every
 * test gets an empty index. Without a PostgreSQL server its suites skip, or fail when
 * OCIREG_REQUIRE_POSTGRES=1 (test/support/postgres.ts).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, it } from 'vitest';
import type { Index } from '../../../src/index/contract.js';
import { openPostgresIndex } from '../../../src/index/postgres/index.js';
import { openSqliteIndex } from '../../../src/index/sqlite/index.js';
import { createTestDatabase, postgresAvailability, withAdmin, type TestDatabase } from '../../support/postgres.js';

export interface OpenedIndex {
  index: Index;
  /** Another index over the same data, as a second node opens it (only where `shared`). */
  another(): Promise<Index>;
  /** The test's database (PostgreSQL only). */
  database?: TestDatabase;
  /** Closes every index opened here. */
  dispose(): Promise<void>;
}

/** What the tests of one describe block share: the database, emptied before each test. */
export interface Backend {
  open(): Promise<OpenedIndex>;
  /** Removes the data for good. */
  dispose(): Promise<void>;
}

export interface IndexImplementation {
  name: 'sqlite' | 'postgres';
  /** Whether several indexes (nodes) can share one database. */
  shared: boolean;
  /** Set when the implementation cannot be tested here: `fail` says whether that is an error. */
  unavailable?: { fail: boolean; reason: string };
  backend(): Promise<Backend>;
}

const sqlite: IndexImplementation = {
  name: 'sqlite',
  shared: false,
  async backend() {
    return {
      async open() {
        const index = openSqliteIndex(':memory:');
        return {
          index,
          another: async () => {
            throw new Error('an in-memory SQLite index cannot be shared');
          },
          dispose: () => index.close(),
        };
      },
      dispose: async () => undefined,
    };
  },
};

/** Closing may not hang a test: DROP DATABASE ... WITH (FORCE) ends what is left. */
const CLOSE_TIMEOUT_MS = 10_000;

/**
 * A database per describe block (creating and migrating one takes most of a second), emptied
 * before each test but the first, and dropped after the block. Its sequences go on counting,
 * as a production database's do.
 */
async function postgresBackend(): Promise<Backend> {
  const database = await createTestDatabase();
  let used = false;
  return {
    async open() {
      if (used) await emptyTables(database.url);
      used = true;
      const opened: Index[] = [];
      const open = async () => {
        const index = await openPostgresIndex({ url: database.url, poolSize: 5 });
        opened.push(index);
        return index;
      };
      const index = await open();
      return {
        index,
        another: open,
        database,
        async dispose() {
          let timer: NodeJS.Timeout | undefined;
          const late = new Promise<void>((resolve) => {
            timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
          });
          await Promise.race([Promise.allSettled(opened.map((i) => i.close())), late]);
          clearTimeout(timer);
        },
      };
    },
    dispose: () => database.drop(),
  };
}

/**
 * Empties every table of the index but the record of its migrations. DELETE, in an order that
 * takes referencing tables first, rather than TRUNCATE: on a few rows it is many times faster.
 */
async function emptyTables(url: string): Promise<void> {
  await withAdmin(url, async (client) => {
    // Leftover sessions of the previous test (a node that was not closed) must not hold locks.
    await client.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`);
    const tables = (
      await client.query<{ name: string }>(
        `SELECT quote_ident(tablename) AS name FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'`,
      )
    ).rows.map((r) => r.name);
    const references = (
      await client.query<{ child: string; parent: string }>(
        `SELECT quote_ident(c.relname) AS child, quote_ident(p.relname) AS parent
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
         WHERE k.contype = 'f' AND k.connamespace = current_schema()::regnamespace AND k.conrelid <> k.confrelid`,
      )
    ).rows;
    const order: string[] = [];
    const left = new Set(tables);
    // Each round takes the tables that no table still left references: at most one round per table.
    for (let round = 0; round < tables.length && left.size > 0; round++) {
      const free = [...left].filter((t) => !references.some((r) => r.parent === t && left.has(r.child)));
      for (const t of free) left.delete(t);
      order.push(...free);
    }
    order.push(...left); // a cycle, if ever: CASCADE-free DELETE will say so
    await client.query(`BEGIN; ${order.map((t) => `DELETE FROM ${t};`).join(' ')} COMMIT`);
  });
}

const availability = postgresAvailability();
const postgres: IndexImplementation = {
  name: 'postgres',
  shared: true,
  ...(availability.state === 'ready' ? {} : { unavailable: { fail: availability.state === 'fail', reason: availability.reason } }),
  backend: postgresBackend,
};

export const IMPLEMENTATIONS: readonly IndexImplementation[] = [sqlite, postgres];

/**
 * `describe.each` over the implementations (those `filter` keeps), with an empty index for every
 * test: `fixture()` gives the current test's. An implementation that cannot run here gets a
 * skipped block, or a failing test when it is required.
 */
export function describeIndex(
  title: string,
  body: (fixture: () => OpenedIndex, impl: IndexImplementation) => void,
  filter: (impl: IndexImplementation) => boolean = () => true,
): void {
  describe.each(IMPLEMENTATIONS.filter(filter))(`${title} ($name)`, (impl) => {
    if (impl.unavailable) {
      const { fail, reason } = impl.unavailable;
      if (fail) {
        it(`needs ${impl.name}`, () => {
          throw new Error(reason);
        });
      } else {
        it.skip(reason, () => undefined);
      }
      return;
    }
    let backend: Backend | undefined;
    let current: OpenedIndex | undefined;
    beforeAll(async () => {
      backend = await impl.backend();
    });
    afterAll(async () => {
      await backend?.dispose();
    });
    beforeEach(async () => {
      current = await backend!.open();
    });
    afterEach(async () => {
      const done = current;
      current = undefined;
      await done?.dispose();
    });
    body(() => {
      if (!current) throw new Error('no index open: fixture() is for use inside a test');
      return current;
    }, impl);
  });
}
