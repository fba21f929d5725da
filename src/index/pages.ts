/**
 * Every row of a keyset-paged listing after `start`, a page of `limit` at a time: each page starts
 * after the key of the last row of the one before, so the listing ends (with one short page) after
 * at most rows/limit + 1 queries, and memory holds one page.
 */
export async function* keysetPages<K, R>(
  page: (after: K, limit: number) => Promise<readonly R[]>,
  start: K,
  keyOf: (row: R) => K,
  limit: number,
): AsyncGenerator<R> {
  let after = start;
  for (;;) {
    const rows = await page(after, limit);
    yield* rows;
    if (rows.length < limit) return;
    after = keyOf(rows[rows.length - 1]!);
  }
}
