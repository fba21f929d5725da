// The ECR API over HTTP with the real @aws-sdk/client-ecr: a registry with `ecr` on, listening
// on a loopback port, and clients signing as its key pairs.
import { ECRClient } from '@aws-sdk/client-ecr';
import type { ConfigFile } from '../../src/config/schema.js';
import { startRegistry, type TestRegistry } from '../helpers.js';
import { listen } from '../support/socket.js';

export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';

/** Key pairs by the registry user they act as; the access rules below give each its rights. */
export const KEYS = {
  admin: { accessKeyId: 'AKIAOCIREGTESTADMIN1', secretAccessKey: 'admin-secret-0123456789abcdef' },
  dev: { accessKeyId: 'AKIAOCIREGTESTDEV001', secretAccessKey: 'dev-secret-0123456789abcdefgh' },
  reader: { accessKeyId: 'AKIAOCIREGTESTREADR1', secretAccessKey: 'reader-secret-0123456789abcde' },
} as const;
export type KeyName = keyof typeof KEYS;

/** admin: everything (an admin); dev: pull, push, delete and manage under team/; reader: pull everywhere. */
export const ECR_ACCESS: NonNullable<ConfigFile['access']> = {
  admins: ['admin'],
  repositories: {
    'team/**': { users: { dev: ['pull', 'push', 'delete', 'manage'] }, authenticated: ['pull'] },
    '**': { authenticated: ['pull'] },
  },
};

export interface EcrTestRegistry extends TestRegistry {
  url: string;
  client(key?: KeyName, options?: { secret?: string; accessKeyId?: string; clockOffsetMs?: number }): ECRClient;
}

export async function startEcrRegistry(overrides: ConfigFile = {}): Promise<EcrTestRegistry> {
  const registry = await startRegistry({
    access: ECR_ACCESS,
    ...overrides,
    ecr: {
      enabled: true,
      accountid: ACCOUNT,
      region: REGION,
      credentials: Object.entries(KEYS).map(([user, k]) => ({ accesskeyid: k.accessKeyId, secretaccesskey: k.secretAccessKey, user })),
      ...overrides.ecr,
    },
  });
  const url = await listen(registry.app);
  const clients: ECRClient[] = [];
  return {
    ...registry,
    url,
    client(key = 'admin', options = {}) {
      const client = new ECRClient({
        endpoint: url,
        region: REGION,
        credentials: { accessKeyId: options.accessKeyId ?? KEYS[key].accessKeyId, secretAccessKey: options.secret ?? KEYS[key].secretAccessKey },
        maxAttempts: 1,
        ...(options.clockOffsetMs !== undefined ? { systemClockOffset: options.clockOffsetMs } : {}),
      });
      clients.push(client);
      return client;
    },
    async close() {
      for (const c of clients) c.destroy();
      await registry.close();
    },
    async destroy() {
      for (const c of clients) c.destroy();
      await registry.destroy();
    },
  };
}

/** The exception an SDK call failed with: its name, message, status and members. */
export async function failure(promise: Promise<unknown>): Promise<{ name: string; message: string; status: number | undefined; error: Record<string, unknown> }> {
  try {
    await promise;
  } catch (err) {
    const e = err as Error & { $metadata?: { httpStatusCode?: number } };
    return { name: e.name, message: e.message, status: e.$metadata?.httpStatusCode, error: e as unknown as Record<string, unknown> };
  }
  throw new Error('the call succeeded; a failure was expected');
}
