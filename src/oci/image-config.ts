/**
 * What a person wants to see of an image's configuration (the OCI image config, or Docker's,
 * which has the same fields): its platform, when it was made, what it runs, its labels and how it
 * was built. Read defensively: a config is whatever the pusher sent, validated only as JSON.
 */
export interface ConfigSummary {
  os?: string;
  architecture?: string;
  variant?: string;
  created?: string;
  author?: string;
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  user?: string;
  env?: string[];
  exposedPorts?: string[];
  labels?: Record<string, string>;
  history?: Array<{ created?: string; createdBy?: string; comment?: string; emptyLayer?: boolean }>;
}

/** At most this many entries of each list are shown. */
const MAX_ITEMS = 500;
const MAX_TEXT = 4096;

export function summarizeConfig(body: Buffer): ConfigSummary | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(doc)) return undefined;
  const config = isObject(doc.config) ? doc.config : {};
  const summary: ConfigSummary = {};
  copyText(summary, 'os', doc.os);
  copyText(summary, 'architecture', doc.architecture);
  copyText(summary, 'variant', doc.variant);
  copyText(summary, 'created', doc.created);
  copyText(summary, 'author', doc.author);
  copyText(summary, 'workingDir', config.WorkingDir);
  copyText(summary, 'user', config.User);
  const entrypoint = texts(config.Entrypoint);
  if (entrypoint) summary.entrypoint = entrypoint;
  const cmd = texts(config.Cmd);
  if (cmd) summary.cmd = cmd;
  const env = texts(config.Env);
  if (env) summary.env = env;
  if (isObject(config.ExposedPorts)) summary.exposedPorts = Object.keys(config.ExposedPorts).slice(0, MAX_ITEMS);
  if (isObject(config.Labels)) {
    summary.labels = Object.fromEntries(
      Object.entries(config.Labels)
        .filter((e): e is [string, string] => typeof e[1] === 'string')
        .slice(0, MAX_ITEMS)
        .map(([k, v]) => [k.slice(0, MAX_TEXT), v.slice(0, MAX_TEXT)]),
    );
  }
  if (Array.isArray(doc.history)) {
    summary.history = doc.history.filter(isObject).slice(0, MAX_ITEMS).map((h) => {
      const step: NonNullable<ConfigSummary['history']>[number] = {};
      if (typeof h.created === 'string') step.created = h.created.slice(0, MAX_TEXT);
      if (typeof h.created_by === 'string') step.createdBy = h.created_by.slice(0, MAX_TEXT);
      if (typeof h.comment === 'string') step.comment = h.comment.slice(0, MAX_TEXT);
      if (h.empty_layer === true) step.emptyLayer = true;
      return step;
    });
  }
  return summary;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function copyText<K extends keyof ConfigSummary>(summary: ConfigSummary, key: K, value: unknown): void {
  if (typeof value === 'string' && value !== '') (summary as Record<string, unknown>)[key] = value.slice(0, MAX_TEXT);
}

function texts(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.filter((v): v is string => typeof v === 'string').slice(0, MAX_ITEMS).map((v) => v.slice(0, MAX_TEXT));
}
