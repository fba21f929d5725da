import { randomBytes } from 'node:crypto';
import { withAdmin } from '../../bench/cluster.js';
import { describe, inject, it } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The admin URL of the PostgreSQL server that test/support/postgres-global.ts started ('' if none). */
    ociregPostgresUrl: string;
  }
}

/** Where the tests find a PostgreSQL server: postgres://user@host:port/db (a superuser, or one allowed CREATEDB). */
export const POSTGRES_URL_VARIABLE = 'OCIREG_TEST_POSTGRES_URL';
/** Set to 1 (CI does) to make PostgreSQL suites fail, rather than skip, when no server is configured. */
export const REQUIRE_POSTGRES_VARIABLE = 'OCIREG_REQUIRE_POSTGRES';

/** The admin URL of the test server: OCIREG_TEST_POSTGRES_URL, or what the global setup started. */
export function postgresUrl(): string | undefined {
  const fromEnv = process.env[POSTGRES_URL_VARIABLE];
  if (fromEnv) return fromEnv;
  try {
    return inject('ociregPostgresUrl') || undefined;
  } catch {
    // Not inside a vitest worker (e.g. a script): only the variable counts.
    return undefined;
  }
}

/** Whether PostgreSQL suites must fail when no server is configured (OCIREG_REQUIRE_POSTGRES=1). */
export function postgresRequired(): boolean {
  return /^(1|true|yes)$/i.test(process.env[REQUIRE_POSTGRES_VARIABLE] ?? '');
}

/**
 * What a PostgreSQL suite should do: run against the URL, skip (no server, not required), or
 * fail (no server, but OCIREG_REQUIRE_POSTGRES=1).
 */
export type PostgresAvailability = { state: 'ready'; url: string } | { state: 'skip'; reason: string } | { state: 'fail'; reason: string };

export function postgresAvailability(): PostgresAvailability {
  const url = postgresUrl();
  if (url) return { state: 'ready', url };
  const reason = `no PostgreSQL server: set ${POSTGRES_URL_VARIABLE}, or install PostgreSQL's server binaries for test/support/postgres-global.ts to start one`;
  return postgresRequired() ? { state: 'fail', reason: `${REQUIRE_POSTGRES_VARIABLE}=1 but ${reason}` } : { state: 'skip', reason };
}

/**
 * A describe block that runs only with a PostgreSQL server. Without one it is skipped, or, when
 * OCIREG_REQUIRE_POSTGRES=1, it holds a single failing test that says why.
 */
export function describeWithPostgres(name: string, body: (url: string) => void): void {
  const availability = postgresAvailability();
  if (availability.state === 'ready') {
    describe(name, () => body(availability.url));
  } else if (availability.state === 'skip') {
    describe.skip(name, () => {
      it(availability.reason, () => undefined);
    });
  } else {
    describe(name, () => {
      it('needs a PostgreSQL server', () => {
        throw new Error(availability.reason);
      });
    });
  }
}

export interface TestDatabase {
  /** URL of the new database (the admin URL with its name). */
  url: string;
  name: string;
  /** Drops it, disconnecting whoever is still connected. Safe to call twice. */
  drop(): Promise<void>;
}

export interface CreateTestDatabaseOptions {
  /** Clone this database (which must have no connections) instead of an empty one. */
  template?: string;
}

/**
 * Creates a database of its own for a test, `ocireg_test_<random>`, on the configured server.
 * Its default collation is ICU's en-US where the server has ICU (Debian's has), not byte order:
 * code that needs byte order (the catalog, tag lists) must ask for it (COLLATE "C"), as it must
 * on a production database created with a language's locale.
 */
export async function createTestDatabase(options: CreateTestDatabaseOptions = {}): Promise<TestDatabase> {
  const availability = postgresAvailability();
  if (availability.state !== 'ready') throw new Error(availability.reason);
  const admin = availability.url;
  const name = `ocireg_test_${randomBytes(6).toString('hex')}`;
  const template = options.template === undefined ? 'template0' : options.template;
  await withAdmin(admin, async (client) => {
    if (options.template !== undefined) {
      // A clone keeps its template's collation.
      await client.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)}`);
      return;
    }
    try {
      await client.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`);
    } catch (err) {
      // A server built without ICU (or older than 15): the server's default collation, then.
      if (!/icu|locale_provider/i.test(String((err as Error).message))) throw err;
      await client.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0 ENCODING 'UTF8'`);
    }
  });
  let dropped: Promise<void> | undefined;
  return {
    url: databaseUrl(admin, name),
    name,
    drop() {
      dropped ??= withAdmin(admin, async (client) => {
        await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
      });
      return dropped;
    },
  };
}

/** The admin URL with another database name (its credentials, host and parameters kept). */
export function databaseUrl(admin: string, database: string): string {
  const url = new URL(admin);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

/** Runs `fn` on one short-lived connection to the admin URL, closed afterwards whatever happens. */
export { withAdmin };

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
