import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { wrkScript } from '../../bench/load.js';
import { parseAb, parseWrk, parseWrkDuration } from '../../bench/loadparse.js';

// Real reports, captured from wrk 4 and ab 2.3 run against both registries (and, for the
// error cases, against small throwaway servers).
const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

describe('parseWrkDuration', () => {
  it('reads wrk units as milliseconds', () => {
    expect(parseWrkDuration('101.18ms')).toBeCloseTo(101.18);
    expect(parseWrkDuration('181.00us')).toBeCloseTo(0.181);
    expect(parseWrkDuration('1.50s')).toBeCloseTo(1500);
    expect(() => parseWrkDuration('fast')).toThrow(/not a wrk duration/);
  });
});

describe('parseWrk', () => {
  it('reads requests/s, the request count and the 99% latency', () => {
    expect(parseWrk(fixture('wrk-get.txt'))).toEqual({
      generator: 'wrk',
      requests: 12018,
      requestsPerSec: 3996.78,
      p99Ms: 101.18,
      non2xx: 0,
      errors: 0,
      errorDetail: '',
    });
    expect(parseWrk(fixture('wrk-get-distribution.txt'))).toMatchObject({ requests: 1480, requestsPerSec: 490.35, p99Ms: 267.08 });
  });

  it('reads latencies given in microseconds', () => {
    expect(parseWrk(fixture('wrk-microseconds.txt'))).toMatchObject({ requests: 7925, requestsPerSec: 7873.83, p99Ms: 4.48 });
  });

  it('counts non-2xx answers and socket errors', () => {
    expect(parseWrk(fixture('wrk-non2xx.txt'))).toMatchObject({ non2xx: 3751, errors: 0, requestsPerSec: 3729.51 });
    const r = parseWrk(fixture('wrk-socket-errors.txt'));
    expect(r).toMatchObject({ requests: 18, requestsPerSec: 8.95, p99Ms: 19.39, non2xx: 0, errors: 4 });
    expect(r.errorDetail).toBe('Socket errors: connect 0, read 0, write 0, timeout 4');
  });

  it('refuses a report without the latency distribution', () => {
    const text = fixture('wrk-get.txt').replace(/^\s*99%.*$/m, '');
    expect(() => parseWrk(text)).toThrow(/99% latency/);
    expect(() => parseWrk('unable to connect to 127.0.0.1:5699 Connection refused')).toThrow(/Requests\/sec/);
  });
});

describe('parseAb', () => {
  it('reads requests/s, complete requests and the 99% latency from the report', () => {
    expect(parseAb(fixture('ab-head.txt'))).toEqual({
      generator: 'ab',
      requests: 13943,
      requestsPerSec: 4647.42,
      p99Ms: 19,
      non2xx: 0,
      errors: 0,
      errorDetail: '',
    });
  });

  it('takes the finer 99% figure of the -e CSV when given', () => {
    expect(parseAb(fixture('ab-head.txt'), fixture('ab-head.csv')).p99Ms).toBe(19.516);
    // a CSV without a 99 row leaves the report's figure
    expect(parseAb(fixture('ab-head.txt'), 'Percentage served,Time in ms\n').p99Ms).toBe(19);
  });

  it('counts non-2xx answers and failed requests', () => {
    expect(parseAb(fixture('ab-non2xx.txt'))).toMatchObject({ requests: 4372, non2xx: 4372, errors: 0, p99Ms: 20 });
    const r = parseAb(fixture('ab-length-failures.txt'));
    expect(r).toMatchObject({ requests: 2000, errors: 1714, non2xx: 0, requestsPerSec: 1706.89 });
    expect(r.errorDetail).toBe('Failed requests: 1714 (Connect: 0, Receive: 0, Length: 1714, Exceptions: 0)');
  });

  it('refuses what is not an ab report', () => {
    expect(() => parseAb('apr_socket_recv: Connection refused (111)')).toThrow(/Requests per second/);
  });
});

describe('wrkScript', () => {
  it('sets the Accept header, quoted for Lua', () => {
    expect(wrkScript('application/vnd.oci.image.manifest.v1+json')).toBe('wrk.headers["Accept"] = "application/vnd.oci.image.manifest.v1+json"\n');
  });
});
