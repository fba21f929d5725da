// Keep-alive load on one URL: wrk for GET and ab for HEAD when installed (wrk does not
// handle answers to HEAD), otherwise the Node generator in a worker thread.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { LoadGenerator } from './args.js';
import { BenchError } from './http.js';
import type { LoadJob, LoadReport } from './load-worker.js';
import { parseAb, parseWrk, type LoadResult } from './loadparse.js';
import { run, which } from './proc.js';

export interface LoadSpec {
  url: string;
  method: 'GET' | 'HEAD';
  accept: string;
  connections: number;
  seconds: number;
  /** Where the generators' scratch files (wrk's script, ab's CSV) go. */
  dir: string;
  /** More headers every request carries (e.g. Authorization). */
  headers?: Readonly<Record<string, string>>;
}

/** Which generator will be used for a method. */
export function generatorFor(method: 'GET' | 'HEAD', choice: LoadGenerator): 'wrk' | 'ab' | 'node' {
  if (choice === 'node') return 'node';
  if (method === 'GET' && which('wrk')) return 'wrk';
  if (method === 'HEAD' && which('ab')) return 'ab';
  return 'node';
}

/** Lua for wrk that sets the Accept header, and any other given. */
export function wrkScript(accept: string, headers: Readonly<Record<string, string>> = {}): string {
  return Object.entries({ Accept: accept, ...headers })
    .map(([name, value]) => `wrk.headers[${JSON.stringify(name)}] = ${JSON.stringify(value)}\n`)
    .join('');
}

async function runWrk(spec: LoadSpec): Promise<LoadResult> {
  const script = join(spec.dir, 'wrk-accept.lua');
  await writeFile(script, wrkScript(spec.accept, spec.headers));
  const threads = String(Math.min(2, spec.connections));
  const ran = await run('wrk', [`-t${threads}`, `-c${spec.connections}`, `-d${spec.seconds}s`, '--latency', '-s', script, spec.url], {
    timeoutMs: (spec.seconds + 30) * 1000,
  });
  return parseWrk(ran.stdout);
}

async function runAb(spec: LoadSpec): Promise<LoadResult> {
  const csv = join(spec.dir, 'ab-percentiles.csv');
  // -t implies -n 50000; an -n after it raises that cap (ab keeps 32 bytes per request).
  const cap = String(Math.min(20_000_000, spec.seconds * 200_000));
  const args = ['-q', '-k', '-c', String(spec.connections), '-t', String(spec.seconds), '-n', cap, '-e', csv, '-H', `Accept: ${spec.accept}`];
  for (const [name, value] of Object.entries(spec.headers ?? {})) args.push('-H', `${name}: ${value}`);
  if (spec.method === 'HEAD') args.splice(2, 0, '-i');
  const ran = await run('ab', [...args, spec.url], { timeoutMs: (spec.seconds + 30) * 1000 });
  const table = await readFile(csv, 'utf8').catch(() => undefined);
  await rm(csv, { force: true });
  return parseAb(ran.stdout, table);
}

function runNode(spec: LoadSpec): Promise<LoadResult> {
  const job: LoadJob = {
    url: spec.url,
    method: spec.method,
    headers: { ...spec.headers, accept: spec.accept },
    connections: spec.connections,
    durationMs: spec.seconds * 1000,
  };
  return new Promise<LoadResult>((resolve, reject) => {
    const worker = new Worker(new URL('./load-worker.js', import.meta.url), { workerData: job });
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new Error(`the Node load generator did not finish within ${spec.seconds + 60} s`));
    }, (spec.seconds + 60) * 1000);
    worker.once('message', (msg: LoadReport | { error: string }) => {
      clearTimeout(timer);
      void worker.terminate();
      if ('error' in msg) return reject(new Error(`Node load generator: ${msg.error}`));
      resolve({
        generator: 'node',
        requests: msg.requests,
        requestsPerSec: msg.requests / (msg.elapsedMs / 1000),
        p99Ms: msg.p99Ms,
        non2xx: msg.non2xx,
        errors: msg.errors,
        errorDetail: msg.firstError ? `${msg.errors} errors, first: ${msg.firstError}` : '',
      });
    });
    worker.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Runs the load and checks that every request was answered 2xx. */
export async function runLoad(spec: LoadSpec, choice: LoadGenerator): Promise<LoadResult> {
  const generator = generatorFor(spec.method, choice);
  const result = generator === 'wrk' ? await runWrk(spec) : generator === 'ab' ? await runAb(spec) : await runNode(spec);
  const what = `${spec.method} ${spec.url} (${generator}, ${spec.connections} connections, ${spec.seconds} s)`;
  if (result.requests === 0) throw new BenchError(`${what}: no request completed`);
  if (result.non2xx > 0) throw new BenchError(`${what}: ${result.non2xx} of ${result.requests} answers were not 2xx`);
  if (result.errors > 0) throw new BenchError(`${what}: ${result.errorDetail || `${result.errors} errors`}`);
  return result;
}
