#!/usr/bin/env -S node --max-semi-space-size=2
import { ConfigError, loadConfig } from './config/config.js';
import { DU_HELP, runDuCommand } from './du-command.js';
import { GC_HELP, runGcCommand } from './gc-command.js';
import { INDEX_HELP, runIndexCommand } from './index-command.js';
import { KEYS_HELP, runKeysCommand } from './keys-command.js';
import { LIFECYCLE_HELP, runLifecycleCommand } from './lifecycle-command.js';
import { runReindex, serve } from './main.js';
import { VERIFY_HELP, runVerifyCommand } from './verify-command.js';
import { IndexOpenError } from './index/open-index.js';
import { StoreOpenError } from './storage/blob-store.js';

const HELP = `Usage: ocireg <command> [config.yml]
       ocireg keys <create|list|revoke> [options] [--config config.yml]
       ocireg lifecycle run [--repository NAME] [--dry-run] [config.yml]
       ocireg index copy --to target.yml [config.yml]
       ocireg gc [--dry-run] [--delete-untagged] [config.yml]
       ocireg verify [--repair] [--repository NAME] [config.yml]
       ocireg du [NAME] [config.yml]

Commands:
  serve [config]    Run the registry (default: 0.0.0.0:5000, data under ./storage)
  reindex [config]  Rebuild the index (SQLite or PostgreSQL) from the blob store (stop the registry first)
${KEYS_HELP}${LIFECYCLE_HELP}${INDEX_HELP}${GC_HELP}${VERIFY_HELP}${DU_HELP}
The configuration file may also be named by REGISTRY_CONFIGURATION_PATH, and any key
can be set by an environment variable such as REGISTRY_HTTP_ADDR=:5001.

Options:
  -h, --help        Show this help
`;

async function main(argv: string[]): Promise<number> {
  const [command, path, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === 'keys') return runKeysCommand(argv.slice(1));
  if (command === 'lifecycle') return runLifecycleCommand(argv.slice(1));
  if (command === 'index') return runIndexCommand(argv.slice(1));
  if (command === 'gc') return runGcCommand(argv.slice(1));
  if (command === 'verify') return runVerifyCommand(argv.slice(1));
  if (command === 'du') return runDuCommand(argv.slice(1));
  if (rest.length > 0 || (command !== 'serve' && command !== 'reindex')) {
    process.stderr.write(`unknown arguments: ${argv.join(' ')}\n\n${HELP}`);
    return 2;
  }
  try {
    const config = loadConfig(path ? { path } : {});
    if (command === 'serve') {
      await serve(config);
      return -1; // keeps running
    }
    await runReindex(config);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof StoreOpenError || err instanceof IndexOpenError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
