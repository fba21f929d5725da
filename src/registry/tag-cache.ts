/**
 * Sorted tag lists of recently listed repositories, kept in memory so that a
 * listing does not read every tag from the index again. Bounded by the number
 * of tags held in all; the repository listed least recently goes first.
 *
 * Each list is kept with the index's version of the repository's tags when it was read, and is
 * read again when the index has another version: a change through this process, another process
 * (`ocireg lifecycle run` beside a running registry) or another node is seen at once.
 */
export class TagCache {
  private readonly entries = new Map<string, TagList>();
  private held = 0;
  /** Lookups answered from memory and lookups that read the index (for metrics). */
  readonly stats = { hits: 0, misses: 0 };

  constructor(
    /** The most tags kept, over all repositories. */
    readonly capacity: number,
  ) {}

  /**
   * The repository's tags, sorted; `load` reads them from the index when they are not held, or
   * were held at another `version` of the repository's tags.
   */
  async get(repo: string, version: string, load: () => Promise<string[]>): Promise<TagList> {
    const hit = this.entries.get(repo);
    if (hit && hit.version !== version) this.delete(repo);
    else if (hit) {
      // Map order is insertion order: moving the entry to the end marks it as the most recent.
      this.entries.delete(repo);
      this.entries.set(repo, hit);
      this.stats.hits++;
      return hit;
    }
    this.stats.misses++;
    const list = new TagList(repo, version, await load());
    if (this.entries.has(repo)) this.delete(repo); // another request loaded it meanwhile
    if (list.tags.length <= this.capacity) {
      this.entries.set(repo, list);
      this.held += list.tags.length;
      for (const [name, old] of this.entries) {
        if (this.held <= this.capacity) break;
        this.entries.delete(name);
        this.held -= old.tags.length;
      }
    }
    return list;
  }

  /** Forgets a repository's tags (they changed). */
  delete(repo: string): void {
    const old = this.entries.get(repo);
    if (!old) return;
    this.entries.delete(repo);
    this.held -= old.tags.length;
  }

  /** Forgets every repository's tags. */
  clear(): void {
    this.entries.clear();
    this.held = 0;
  }

  /** How many tags are held, over all repositories. */
  get size(): number {
    return this.held;
  }
}

/** One repository's tags in lexical order, and the listing of all of them as sent. */
export class TagList {
  private body: Buffer | undefined;

  constructor(
    readonly repo: string,
    /** The index's version of the repository's tags that this list was read at. */
    readonly version: string,
    readonly tags: readonly string[],
  ) {}

  /** At most `limit` tags after `last` (all from the start when `last` is empty). */
  after(last: string, limit: number): string[] {
    let lo = 0;
    if (last !== '') {
      // The first tag greater than `last`. Tags are ASCII, so JavaScript's order is the index's.
      let hi = this.tags.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.tags[mid]! <= last) lo = mid + 1;
        else hi = mid;
      }
    }
    return this.tags.slice(lo, lo + limit);
  }

  /** `{"name":…,"tags":[…]}` with every tag, serialised once. */
  json(): Buffer {
    this.body ??= Buffer.from(JSON.stringify({ name: this.repo, tags: this.tags }));
    return this.body;
  }
}
