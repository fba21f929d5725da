// The notifier's rules in isolation: the delay between attempts, the ignore rules, log-safe URLs.
import { describe, expect, it } from 'vitest';
import { retryDelay, safeUrl, wanted } from '../../src/events/notifier.js';

describe('retryDelay', () => {
  it('is short below the threshold, then backoff doubling per failure up to the cap', () => {
    const ep = { threshold: 3, backoffMs: 1000 };
    expect([1, 2].map((f) => retryDelay(ep, f, 60_000))).toEqual([50, 100]);
    expect([3, 4, 5, 6, 7, 8, 9].map((f) => retryDelay(ep, f, 60_000))).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000]);
    // An hour of failures stays at the cap: the receiver is tried again at least once a minute.
    expect(retryDelay(ep, 10_000, 60_000)).toBe(60_000);
    // Never shorter than backoff itself, nor longer before the threshold.
    expect(retryDelay({ threshold: 0, backoffMs: 120_000 }, 1, 60_000)).toBe(120_000);
    expect(retryDelay({ threshold: 10, backoffMs: 20 }, 5, 60_000)).toBe(20);
  });
});

describe('wanted', () => {
  const event = (action: string, mediaType?: string) => JSON.stringify({ action, target: { ...(mediaType ? { mediaType } : {}), repository: 'r' } });
  it('leaves out ignored actions and target media types; deletes (no media type) pass a media type rule', () => {
    const ep = { ignoredActions: ['pull'], ignoredMediaTypes: ['application/octet-stream'] };
    expect(wanted(ep, event('pull', 'application/vnd.oci.image.manifest.v1+json'))).toBe(false);
    expect(wanted(ep, event('push', 'application/octet-stream'))).toBe(false);
    expect(wanted(ep, event('push', 'application/vnd.oci.image.manifest.v1+json'))).toBe(true);
    expect(wanted(ep, event('delete'))).toBe(true);
    expect(wanted({ ignoredActions: [], ignoredMediaTypes: [] }, event('pull', 'application/octet-stream'))).toBe(true);
  });
});

describe('safeUrl', () => {
  it('drops user information and the query', () => {
    expect(safeUrl('https://u:p@hooks.example.com:8443/in/x?token=t#f')).toBe('https://hooks.example.com:8443/in/x');
    expect(safeUrl('nonsense')).toBe('(invalid URL)');
  });
});
