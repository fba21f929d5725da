// The Node load generator, run in a worker thread so that the bench's own event loop does not
// slow it: `connections` keep-alive sockets, each sending one request after another for the
// given time, with every latency recorded.
import { Agent, request } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { percentileSorted } from './stats.js';

export interface LoadJob {
  url: string;
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  connections: number;
  durationMs: number;
}

export interface LoadReport {
  requests: number;
  elapsedMs: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
  firstError: string;
}

async function runJob(job: LoadJob): Promise<LoadReport> {
  const agent = new Agent({ keepAlive: true, maxSockets: job.connections, maxFreeSockets: job.connections });
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  let non2xx = 0;
  let errors = 0;
  let firstError = '';
  const start = performance.now();
  const end = start + job.durationMs;

  const once = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = request(job.url, { method: job.method, headers: job.headers, agent }, (res) => {
        res.resume();
        res.once('end', () => {
          if (count === latencies.length) {
            const grown = new Float64Array(latencies.length * 2);
            grown.set(latencies);
            latencies = grown;
          }
          latencies[count++] = performance.now() - t0;
          const status = res.statusCode ?? 0;
          if (status < 200 || status > 299) {
            non2xx++;
            if (!firstError) firstError = `HTTP ${status}`;
          }
          resolve();
        });
        res.once('error', (err) => {
          errors++;
          if (!firstError) firstError = err.message;
          resolve();
        });
      });
      req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
      req.once('error', (err) => {
        errors++;
        if (!firstError) firstError = err.message;
        resolve();
      });
      req.end();
    });

  const loop = async () => {
    while (performance.now() < end && errors < 1000) await once();
  };
  await Promise.all(Array.from({ length: job.connections }, loop));
  const elapsedMs = performance.now() - start;
  agent.destroy();
  const sorted = latencies.subarray(0, count).sort();
  return { requests: count, elapsedMs, p99Ms: percentileSorted(sorted, 99), non2xx, errors, firstError };
}

if (parentPort) {
  const port = parentPort;
  runJob(workerData as LoadJob).then(
    (report) => port.postMessage(report),
    (err: unknown) => port.postMessage({ error: (err as Error).stack ?? String(err) }),
  );
}
