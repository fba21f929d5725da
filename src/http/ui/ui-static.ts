/**
 * The web UI's files (web/ in the package: plain HTML, CSS and JavaScript modules, no build and
 * nothing fetched from elsewhere), served under /ui/ with a strict Content-Security-Policy: only
 * this origin's scripts and styles, no inline code, no framing.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

/** web/ at the package's root, from src/http/ui/ or dist/http/ui/. */
export const WEB_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'web');

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export async function uiStaticRoutes(app: FastifyInstance): Promise<void> {
  // Read once: a handful of small files, answered from memory.
  const files = new Map<string, { type: string; body: Buffer }>();
  let names: string[];
  try {
    names = readdirSync(WEB_ROOT);
  } catch (err) {
    throw new Error(`the web UI's files are missing from ${WEB_ROOT} (${(err as Error).message}); reinstall the package, or set ui.enabled: false`);
  }
  for (const name of names) {
    const type = TYPES[extname(name)];
    if (type) files.set(name, { type, body: readFileSync(join(WEB_ROOT, name)) });
  }
  const page = { need: { kind: 'public' } } as const;
  app.get('/ui', { config: page }, async (_request, reply) => reply.redirect('/ui/', 308));
  app.get('/ui/*', { config: page }, async (request, reply) => {
    const path = (request.params as { '*': string })['*'];
    if (path.startsWith('api/')) return reply.code(404).send({ errors: [{ code: 'UNSUPPORTED', message: `no such endpoint: /ui/${path}` }] });
    // Every path that is not a file is the app itself (its pages are addressed after the #).
    const file = files.get(path === '' ? 'index.html' : path) ?? (path.includes('.') ? undefined : files.get('index.html'));
    if (!file) return reply.code(404).type('text/plain; charset=utf-8').send('not found');
    return reply
      .header('Content-Security-Policy', UI_CSP)
      .header('X-Content-Type-Options', 'nosniff')
      .header('X-Frame-Options', 'DENY')
      .header('Referrer-Policy', 'no-referrer')
      .header('Cache-Control', file.type.startsWith('text/html') ? 'no-cache' : 'public, max-age=300')
      .type(file.type)
      .send(file.body);
  });
}
