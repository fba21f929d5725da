// Parsers of the load generators' reports (pure).

export interface LoadResult {
  /** Which generator measured it. */
  generator: string;
  requests: number;
  requestsPerSec: number;
  p99Ms: number;
  /** Answers outside 2xx (3xx too for wrk, which counts them together). */
  non2xx: number;
  /** Connection errors, timeouts, short or failed answers. */
  errors: number;
  /** A one-line account of the errors, for a failure message. */
  errorDetail: string;
}

const TIME_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "101.18ms" → 101.18, "181.00us" → 0.181, "1.50s" → 1500 (milliseconds). */
export function parseWrkDuration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new Error(`not a wrk duration: ${JSON.stringify(text)}`);
  return Number(m[1]) * TIME_UNITS[m[2]!]!;
}

function need(text: string, re: RegExp, what: string, tool: string): RegExpExecArray {
  const m = re.exec(text);
  if (!m) throw new Error(`${tool} output has no ${what}:\n${text}`);
  return m;
}

/** The report of `wrk --latency`. */
export function parseWrk(text: string): LoadResult {
  const rps = Number(need(text, /^Requests\/sec:\s+([\d.]+)/m, 'Requests/sec', 'wrk')[1]);
  const requests = Number(need(text, /^\s*(\d+) requests in /m, 'request count', 'wrk')[1]);
  const p99 = parseWrkDuration(need(text, /^\s*99%\s+(\S+)/m, '99% latency (was --latency given?)', 'wrk')[1]!);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const errors = sock ? sock.slice(1, 5).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    generator: 'wrk',
    requests,
    requestsPerSec: rps,
    p99Ms: p99,
    non2xx,
    errors,
    errorDetail: sock ? sock[0] : '',
  };
}

/**
 * The report of ab (ApacheBench), and optionally its `-e` CSV of percentiles, whose 99% row
 * has a finer resolution than the report's whole milliseconds.
 */
export function parseAb(text: string, csv?: string): LoadResult {
  const rps = Number(need(text, /^Requests per second:\s+([\d.]+)/m, 'Requests per second', 'ab')[1]);
  const requests = Number(need(text, /^Complete requests:\s+(\d+)/m, 'Complete requests', 'ab')[1]);
  const failedMatch = need(text, /^Failed requests:\s+(\d+)(?:\s*\n\s*(\(.*\)))?/m, 'Failed requests', 'ab');
  const failed = Number(failedMatch[1]);
  const non2xx = Number(/^Non-2xx responses:\s+(\d+)/m.exec(text)?.[1] ?? 0);
  let p99: number | undefined;
  if (csv !== undefined) {
    const row = /^99,([\d.]+)\s*$/m.exec(csv);
    if (row) p99 = Number(row[1]);
  }
  p99 ??= Number(need(text, /^\s*99%\s+(\d+)/m, '99% latency', 'ab')[1]);
  return {
    generator: 'ab',
    requests,
    requestsPerSec: rps,
    p99Ms: p99,
    non2xx,
    errors: failed,
    errorDetail: failed > 0 ? `Failed requests: ${failed} ${failedMatch[2] ?? ''}`.trim() : '',
  };
}
