import { describe, expect, it } from 'vitest';
import { addQuery, nextLink, resolveLocation } from '../../bench/http.js';

describe('nextLink', () => {
  it('reads the target of rel="next", as both registries write it', () => {
    expect(nextLink('</v2/_catalog?last=bench%2Fmanifest&n=1>; rel="next"')).toBe('/v2/_catalog?last=bench%2Fmanifest&n=1');
    expect(nextLink('<http://127.0.0.1:5000/v2/r/tags/list?n=2&last=b>; rel="next"')).toBe('http://127.0.0.1:5000/v2/r/tags/list?n=2&last=b');
  });

  it('finds next among several links and relations, quoted or not', () => {
    expect(nextLink('</a>; rel="prev", </b>; rel="next"')).toBe('/b');
    expect(nextLink('</c>; rel=next')).toBe('/c');
    expect(nextLink('</d>; title="x"; rel="last next"')).toBe('/d');
  });

  it('is undefined without a next link', () => {
    expect(nextLink(undefined)).toBeUndefined();
    expect(nextLink('')).toBeUndefined();
    expect(nextLink('</a>; rel="prev"')).toBeUndefined();
    expect(nextLink('</a>; rel="nextpage"')).toBeUndefined();
  });
});

describe('Locations', () => {
  it('resolves relative and absolute Locations', () => {
    expect(resolveLocation('/v2/r/blobs/uploads/abc', 'http://127.0.0.1:5000/v2/r/blobs/uploads/')).toBe('http://127.0.0.1:5000/v2/r/blobs/uploads/abc');
    expect(resolveLocation('http://127.0.0.1:6000/x?_state=a%3D', 'http://127.0.0.1:5000/')).toBe('http://127.0.0.1:6000/x?_state=a%3D');
  });

  it('appends a parameter with ? or &, leaving the existing query as written', () => {
    expect(addQuery('http://h/u', 'digest', 'sha256:ab')).toBe('http://h/u?digest=sha256%3Aab');
    expect(addQuery('http://h/u?_state=x%2By%3D%3D', 'digest', 'sha256:ab')).toBe('http://h/u?_state=x%2By%3D%3D&digest=sha256%3Aab');
    expect(addQuery('http://h/u?', 'n', '1')).toBe('http://h/u?n=1');
  });
});
