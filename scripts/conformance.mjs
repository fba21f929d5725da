#!/usr/bin/env node
// Runs the OCI Distribution conformance suite (test/conformance/) with vitest.
//
//   npm run conformance                       -> starts our built registry (dist/cli.js) and tests it
//   npm run conformance -- http://host:port   -> tests the registry at that URL
//
// Arguments after the URL go to vitest (e.g. `-t "push:"`). Options for foreign registries
// are environment variables; see docs/conformance.md.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const env = { ...process.env };

if (args[0] !== undefined && /^https?:\/\//i.test(args[0])) {
  const url = args.shift().replace(/\/+$/, '');
  env.OCI_CONFORMANCE_URL = url;
  console.log(`conformance: target ${url}`);
} else if (env.OCI_CONFORMANCE_URL) {
  console.log(`conformance: target ${env.OCI_CONFORMANCE_URL} (from OCI_CONFORMANCE_URL)`);
} else {
  delete env.OCI_CONFORMANCE_URL;
  console.log('conformance: target our own registry (node dist/cli.js serve on a free 127.0.0.1 port)');
}

const vitest = join(root, 'node_modules', '.bin', 'vitest');
const child = spawn(vitest, ['run', '--config', 'vitest.conformance.config.ts', ...args], {
  cwd: root,
  env,
  stdio: 'inherit',
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => child.kill(signal));
}
child.on('exit', (code, signal) => {
  process.exit(code ?? (signal ? 1 : 0));
});
child.on('error', (err) => {
  console.error(`conformance: could not start vitest: ${err.message}`);
  process.exit(1);
});
