import * as m0001 from './0001-initial.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Every schema migration, oldest first. A new one is a new file added here. */
export const MIGRATIONS: readonly Migration[] = [m0001];
