/**
 * The WWW-Authenticate challenge of an upstream registry (RFC 9110 11.6.1): its scheme and
 * parameters, as Docker's token authentication sends them
 * (`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="..."`).
 */

export interface Challenge {
  /** Lower-cased: `bearer`, `basic`, ... */
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/** The challenges of a header's value; the first one of each scheme is kept. Unparseable text gives none. */
export function parseChallenges(header: string | null | undefined): Challenge[] {
  if (!header) return [];
  const found: Challenge[] = [];
  // scheme, then auth-params (name=token or name="quoted"), separated by commas; a new scheme starts
  // a new challenge. The header is short (an upstream's), and the loop consumes text on every turn.
  const text = header.trim();
  let i = 0;
  let current: { scheme: string; params: Record<string, string> } | undefined;
  while (i < text.length) {
    const rest = text.slice(i);
    const param = /^\s*,?\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^\s,]*)\s*/.exec(rest);
    if (param && current) {
      const name = param[1]!.toLowerCase();
      const value = param[3] !== undefined ? param[3].replace(/\\(.)/g, '$1') : param[2]!;
      if (!(name in current.params)) current.params[name] = value;
      i += param[0].length;
      continue;
    }
    const scheme = /^\s*,?\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)(?=\s|$|,)\s*/.exec(rest);
    if (!scheme) break;
    current = { scheme: scheme[1]!.toLowerCase(), params: {} };
    if (!found.some((c) => c.scheme === current!.scheme)) found.push(current);
    i += scheme[0].length;
  }
  return found;
}
