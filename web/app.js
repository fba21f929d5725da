// @ts-check
// The registry's web UI: one module, no framework, nothing fetched from elsewhere. Every text
// that comes from the registry (names, tags, labels, history) is put in the page as text
// (textContent), never as HTML. The session lives in an HttpOnly cookie; the CSRF value the
// server gives is kept in memory only, and sent with every write.

/** @type {{ auth: boolean, signIn: boolean, user: string | null, csrf: string | null }} */
let session = { auth: false, signIn: false, user: null, csrf: null };

const main = /** @type {HTMLElement} */ (document.getElementById('main'));
const who = /** @type {HTMLElement} */ (document.getElementById('who'));

/**
 * An element with attributes and children (strings become text nodes).
 * @param {string} tag
 * @param {Record<string, string | boolean | undefined>} [attrs]
 * @param {Array<Node | string | null | undefined | false>} children
 * @returns {HTMLElement}
 */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** @param {Node[]} nodes */
function show(...nodes) {
  main.replaceChildren(...nodes);
}

class ApiError extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * A call to the registry, with the session's CSRF value on writes.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 */
async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' };
  if (method !== 'GET') headers['x-ocireg-csrf'] = session.csrf ?? 'none';
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 204) return null;
  const text = await res.text();
  /** @type {any} */
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) throw new ApiError(res.status, data?.errors?.[0]?.message ?? `${res.status} ${res.statusText}`);
  return data;
}

/** @param {string} name */
const repoPath = (name) => name.split('/').map(encodeURIComponent).join('/');
/** @param {number} n */
function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}
/** @param {number} ms */
const when = (ms) => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
/** @param {string} digest */
const short = (digest) => digest.replace(/^(sha256:|sha512:)/, '').slice(0, 12);

/** @param {unknown} err */
function failure(err) {
  if (err instanceof ApiError && err.status === 401 && session.signIn && !session.user) {
    location.hash = '#/signin';
    return el('p', { class: 'muted' }, 'Sign in to see this.');
  }
  return el('p', { class: 'error', role: 'alert' }, err instanceof Error ? err.message : String(err));
}

function renderWho() {
  if (session.user) {
    const out = el('button', { type: 'button', id: 'signout' }, 'Sign out');
    out.addEventListener('click', async () => {
      await api('POST', '/ui/api/logout');
      session = { ...session, user: null, csrf: null };
      renderWho();
      location.hash = session.signIn ? '#/signin' : '#/';
    });
    who.replaceChildren(el('span', { class: 'muted' }, 'Signed in as '), el('strong', { id: 'user' }, session.user), ' ', out);
  } else if (session.signIn) {
    who.replaceChildren(el('a', { href: '#/signin' }, 'Sign in'));
  } else {
    who.replaceChildren();
  }
}

function signInPage() {
  const user = el('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, 'aria-label': 'User name' });
  const password = el('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true, 'aria-label': 'Password' });
  const message = el('p', { class: 'error', role: 'alert' });
  const form = el('form', { class: 'signin' }, el('h1', {}, 'Sign in'), el('label', {}, 'User name', user), el('label', {}, 'Password', password), el('button', { class: 'primary', type: 'submit' }, 'Sign in'), message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.textContent = '';
    try {
      const result = await api('POST', '/ui/api/login', { username: /** @type {HTMLInputElement} */ (user).value, password: /** @type {HTMLInputElement} */ (password).value });
      /** @type {HTMLInputElement} */ (password).value = '';
      session = { ...session, user: result.user, csrf: result.csrf };
      renderWho();
      location.hash = '#/';
    } catch (err) {
      message.textContent = err instanceof Error ? err.message : String(err);
    }
  });
  show(form);
  user.focus();
}

/** @param {URLSearchParams} params */
async function repositoriesPage(params) {
  const q = params.get('q') ?? '';
  const last = params.get('last') ?? '';
  const search = el('input', { type: 'search', id: 'search', placeholder: 'Search repositories', value: q, 'aria-label': 'Search repositories' });
  const form = el('form', { class: 'row' }, search, el('button', { type: 'submit' }, 'Search'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/?q=${encodeURIComponent(/** @type {HTMLInputElement} */ (search).value.trim())}`;
  });
  const list = el('div', {}, el('p', { class: 'muted' }, 'Loading…'));
  // An import reloads the list below, so that what it brought in shows.
  show(el('h1', {}, 'Repositories'), form, uploader(() => void repositoryList(list, q, last)), list);
  await repositoryList(list, q, last);
}

/** Fills `list` with a page of repositories (with their usage). @param {HTMLElement} list @param {string} q @param {string} last */
async function repositoryList(list, q, last) {
  try {
    const query = new URLSearchParams({ n: '50' });
    if (q) query.set('q', q);
    if (last) query.set('last', last);
    const [page, usage] = await Promise.all([api('GET', `/ui/api/repositories?${query}`), api('GET', '/ui/api/usage').catch(() => ({ repositories: [] }))]);
    /** @type {Map<string, any>} */
    const use = new Map(usage.repositories.map((/** @type {any} */ u) => [u.name, u]));
    if (page.repositories.length === 0) {
      list.replaceChildren(el('p', { class: 'muted' }, q ? 'No repository matches.' : 'No repositories yet.'));
      return;
    }
    const rows = page.repositories.map((/** @type {{name: string}} */ r) => {
      const u = use.get(r.name);
      return el(
        'tr',
        {},
        el('td', {}, el('a', { href: `#/r/${repoPath(r.name)}`, class: 'repo' }, r.name)),
        el('td', { class: 'num' }, u ? String(u.manifests) : ''),
        el('td', { class: 'num' }, u ? bytes(u.bytes) : ''),
        el('td', { class: 'num' }, u ? bytes(u.uniqueBytes) : ''),
      );
    });
    const table = el('table', { id: 'repositories' }, el('thead', {}, el('tr', {}, el('th', {}, 'Repository'), el('th', {}, 'Manifests'), el('th', {}, 'Size'), el('th', {}, 'Only here'))), el('tbody', {}, ...rows));
    const pager = el('div', { class: 'row' });
    if (last) pager.append(el('a', { class: 'button', href: `#/?q=${encodeURIComponent(q)}` }, 'First page'));
    if (page.next) pager.append(el('a', { class: 'button', id: 'next', href: `#/?q=${encodeURIComponent(q)}&last=${encodeURIComponent(page.next)}` }, 'Next page'));
    list.replaceChildren(table, pager);
  } catch (err) {
    list.replaceChildren(failure(err));
  }
}

/**
 * Drag and drop (or choose) an image archive; it is sent to the import API with a progress bar.
 * @param {() => void} [onImported] called after a successful import
 */
function uploader(onImported) {
  const file = el('input', { type: 'file', id: 'archive', accept: '.tar,.tar.gz,.tgz,application/x-tar,application/gzip' });
  const repository = el('input', { type: 'text', id: 'import-repository', placeholder: 'repository (optional)', 'aria-label': 'Repository' });
  const tag = el('input', { type: 'text', id: 'import-tag', placeholder: 'tag (optional)', 'aria-label': 'Tag' });
  const bar = /** @type {HTMLProgressElement} */ (el('progress', { max: '100', value: '0', hidden: true, id: 'progress' }));
  const status = el('div', { id: 'import-status', role: 'status' });
  const zone = el('div', { class: 'drop', id: 'drop' }, el('p', {}, 'Drop a docker save or OCI archive (.tar, .tar.gz) here to import it, or choose one: ', file), el('div', { class: 'row' }, repository, tag), bar, status);
  /** @param {File} chosen */
  const send = (chosen) => {
    const data = new FormData();
    const repo = /** @type {HTMLInputElement} */ (repository).value.trim();
    const t = /** @type {HTMLInputElement} */ (tag).value.trim();
    if (repo) data.append('repository', repo);
    if (t) data.append('tag', t);
    data.append('file', chosen, chosen.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/import');
    xhr.setRequestHeader('x-ocireg-csrf', session.csrf ?? 'none');
    xhr.setRequestHeader('accept', 'application/json');
    bar.hidden = false;
    bar.value = 0;
    status.replaceChildren(el('span', { class: 'muted' }, `Uploading ${chosen.name}…`));
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    });
    xhr.addEventListener('load', () => {
      bar.value = 100;
      /** @type {any} */
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        const imported = Array.isArray(body?.imported) ? body.imported : [];
        status.replaceChildren(
          el('p', {}, `Imported ${imported.length} image(s):`),
          el('ul', { id: 'imported' }, ...imported.map((/** @type {any} */ i) => el('li', {}, el('a', { href: `#/r/${repoPath(String(i.repository))}@${String(i.digest)}` }, `${i.repository}${i.tag ? `:${i.tag}` : ''}`), ' ', el('code', {}, short(String(i.digest)))))),
        );
        onImported?.();
      } else {
        status.replaceChildren(el('p', { class: 'error', role: 'alert' }, body?.errors?.[0]?.message ?? `Import failed: ${xhr.status}`));
      }
    });
    xhr.addEventListener('error', () => status.replaceChildren(el('p', { class: 'error', role: 'alert' }, 'The upload failed (connection lost).')));
    xhr.send(data);
  };
  file.addEventListener('change', () => {
    const chosen = /** @type {HTMLInputElement} */ (file).files?.[0];
    if (chosen) send(chosen);
  });
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const chosen = e.dataTransfer?.files?.[0];
    if (chosen) send(chosen);
  });
  return zone;
}

/** @param {string} name @param {URLSearchParams} params */
async function repositoryPage(name, params) {
  const last = params.get('last') ?? '';
  const body = el('div', {}, el('p', { class: 'muted' }, 'Loading…'));
  show(el('p', {}, el('a', { href: '#/' }, '← Repositories')), el('h1', {}, name), body);
  try {
    const query = new URLSearchParams({ n: '50' });
    if (last) query.set('last', last);
    const page = await api('GET', `/ui/api/repository/${repoPath(name)}/tags?${query}`);
    if (page.tags.length === 0) {
      body.replaceChildren(el('p', { class: 'muted' }, 'No tags.'));
      return;
    }
    const rows = page.tags.map((/** @type {any} */ t) => {
      const remove = el('button', { type: 'button', class: 'danger', 'data-tag': t.tag }, 'Delete tag');
      remove.addEventListener('click', async () => {
        if (!confirm(`Delete the tag ${t.tag}? The image stays under its digest and its other tags.`)) return;
        try {
          await api('DELETE', `/ui/api/repository/${repoPath(name)}/tag/${encodeURIComponent(t.tag)}`);
          await repositoryPage(name, params);
        } catch (err) {
          body.prepend(failure(err));
        }
      });
      return el(
        'tr',
        { 'data-tag': t.tag },
        el('td', {}, el('a', { href: `#/r/${repoPath(name)}@${t.digest}`, class: 'tag' }, t.tag)),
        el('td', {}, el('code', { title: t.digest }, short(t.digest))),
        el('td', {}, el('span', { class: 'mono' }, t.artifactType ?? t.mediaType)),
        el('td', { class: 'num' }, bytes(t.size)),
        el('td', {}, when(t.pushedAt)),
        el('td', {}, remove),
      );
    });
    const table = el('table', { id: 'tags' }, el('thead', {}, el('tr', {}, el('th', {}, 'Tag'), el('th', {}, 'Digest'), el('th', {}, 'Media type'), el('th', {}, 'Size'), el('th', {}, 'Pushed'), el('th', {}, ''))), el('tbody', {}, ...rows));
    const pager = el('div', { class: 'row' });
    if (page.next) pager.append(el('a', { class: 'button', href: `#/r/${repoPath(name)}?last=${encodeURIComponent(page.next)}` }, 'Next page'));
    body.replaceChildren(pullBox(`docker pull ${page.pull}:${page.tags[0].tag}`), table, pager);
  } catch (err) {
    body.replaceChildren(failure(err));
  }
}

/** The pull command, with a button that copies it. @param {string} command */
function pullBox(command) {
  const text = el('code', { id: 'pull-command' }, command);
  const copy = el('button', { type: 'button', id: 'copy' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(command);
    } catch {
      const range = document.createRange();
      range.selectNodeContents(text);
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(range);
      document.execCommand('copy');
    }
    copy.textContent = 'Copied';
    setTimeout(() => (copy.textContent = 'Copy'), 2000);
  });
  return el('div', { class: 'pull' }, text, copy);
}

/**
 * @param {Array<[string, string | Node | null | undefined]>} pairs
 */
function facts(pairs) {
  return el('dl', { class: 'facts' }, ...pairs.filter(([, v]) => v !== undefined && v !== null && v !== '').flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, /** @type {string | Node} */ (v))]));
}

/** @param {string} name @param {string} digest */
async function imagePage(name, digest) {
  const body = el('div', {}, el('p', { class: 'muted' }, 'Loading…'));
  show(el('p', {}, el('a', { href: `#/r/${repoPath(name)}` }, `← ${name}`)), el('h1', {}, `${name}@${short(digest)}`), body);
  try {
    const image = await api('GET', `/ui/api/repository/${repoPath(name)}/manifest/${encodeURIComponent(digest)}`);
    const parts = [pullBox(`docker pull ${image.pull}`)];
    parts.push(
      facts([
        ['Digest', el('code', {}, image.digest)],
        ['Media type', el('span', { class: 'mono' }, image.mediaType)],
        ['Artifact type', image.artifactType],
        ['Tags', image.tags.join(', ')],
        ['Size', bytes(image.size)],
        ['Pushed', when(image.pushedAt)],
        ['Subject', image.subject ? el('a', { href: `#/r/${repoPath(name)}@${image.subject}` }, image.subject) : null],
      ]),
    );
    const c = image.config;
    if (c) {
      parts.push(el('h2', {}, 'Configuration'));
      parts.push(
        facts([
          ['Platform', [c.os, c.architecture, c.variant].filter(Boolean).join('/')],
          ['Created', c.created],
          ['Author', c.author],
          ['Entrypoint', c.entrypoint ? el('code', {}, JSON.stringify(c.entrypoint)) : null],
          ['Command', c.cmd ? el('code', {}, JSON.stringify(c.cmd)) : null],
          ['Working directory', c.workingDir],
          ['User', c.user],
          ['Ports', c.exposedPorts?.join(', ')],
        ]),
      );
      const labels = Object.entries(c.labels ?? {});
      if (labels.length > 0) {
        parts.push(el('h2', {}, 'Labels'));
        parts.push(el('table', { id: 'labels' }, el('tbody', {}, ...labels.map(([k, v]) => el('tr', {}, el('td', { class: 'mono' }, k), el('td', {}, String(v)))))));
      }
      if (c.history?.length) {
        parts.push(el('h2', {}, 'History'));
        parts.push(el('table', { id: 'history' }, el('tbody', {}, ...c.history.map((/** @type {any} */ h) => el('tr', {}, el('td', {}, h.created ?? ''), el('td', { class: 'mono' }, h.createdBy ?? h.comment ?? ''), el('td', { class: 'muted' }, h.emptyLayer ? 'no layer' : ''))))));
      }
    }
    if (image.layers.length > 0) {
      parts.push(el('h2', {}, 'Layers'));
      parts.push(el('table', { id: 'layers' }, el('thead', {}, el('tr', {}, el('th', {}, 'Digest'), el('th', {}, 'Media type'), el('th', {}, 'Size'))), el('tbody', {}, ...image.layers.map((/** @type {any} */ l) => el('tr', {}, el('td', {}, el('code', { title: l.digest }, short(l.digest))), el('td', { class: 'mono' }, l.mediaType), el('td', { class: 'num' }, bytes(l.size)))))));
    }
    if (image.children.length > 0) {
      parts.push(el('h2', {}, 'Platforms'));
      parts.push(el('table', { id: 'children' }, el('tbody', {}, ...image.children.map((/** @type {any} */ m) => el('tr', {}, el('td', {}, el('a', { href: `#/r/${repoPath(name)}@${m.digest}`, class: 'platform' }, m.platform ?? m.artifactType ?? short(m.digest))), el('td', {}, el('code', {}, short(m.digest))), el('td', { class: 'num' }, bytes(m.size)))))));
    }
    parts.push(el('h2', {}, 'Referrers'));
    parts.push(
      image.referrers.length === 0
        ? el('p', { class: 'muted' }, 'No signatures, SBOMs or other artifacts refer to this manifest.')
        : el('table', { id: 'referrers' }, el('thead', {}, el('tr', {}, el('th', {}, 'Artifact type'), el('th', {}, 'Digest'), el('th', {}, 'Size'))), el('tbody', {}, ...image.referrers.map((/** @type {any} */ r) => el('tr', {}, el('td', { class: 'mono' }, r.artifactType ?? r.mediaType), el('td', {}, el('a', { href: `#/r/${repoPath(name)}@${r.digest}` }, short(r.digest))), el('td', { class: 'num' }, bytes(r.size)))))),
    );
    parts.push(el('h2', {}, 'Download'));
    const exportBase = `/api/v1/export/${repoPath(name)}@${image.digest}`;
    const downloads = el('div', { class: 'row', id: 'downloads' });
    if (image.kind === 'index') {
      for (const m of image.children.filter((/** @type {any} */ m) => m.platform)) {
        downloads.append(el('a', { class: 'button', href: `${exportBase}?format=docker&platform=${encodeURIComponent(m.platform)}`, download: '' }, `docker archive (${m.platform})`));
      }
    } else {
      downloads.append(el('a', { class: 'button', href: `${exportBase}?format=docker`, download: '' }, 'docker archive'));
    }
    downloads.append(el('a', { class: 'button', href: `${exportBase}?format=oci`, download: '' }, 'OCI archive'));
    parts.push(downloads);
    const remove = el('button', { type: 'button', class: 'danger', id: 'delete-image' }, 'Delete this manifest and its tags');
    remove.addEventListener('click', async () => {
      if (!confirm(`Delete ${name}@${image.digest} and every tag that points at it?`)) return;
      try {
        await api('DELETE', `/ui/api/repository/${repoPath(name)}/manifest/${encodeURIComponent(image.digest)}`);
        location.hash = `#/r/${repoPath(name)}`;
      } catch (err) {
        body.prepend(failure(err));
      }
    });
    parts.push(el('div', { class: 'row' }, remove));
    body.replaceChildren(...parts);
  } catch (err) {
    body.replaceChildren(failure(err));
  }
}

async function route() {
  const hash = decodeURI(location.hash.replace(/^#/, '')) || '/';
  const [path = '/', search = ''] = hash.split('?');
  const params = new URLSearchParams(search);
  if (path === '/signin') return signInPage();
  const image = /^\/r\/(.+)@(sha(?:256|512):[a-f0-9]+)$/.exec(path);
  if (image) return imagePage(image[1] ?? '', image[2] ?? '');
  const repo = /^\/r\/(.+)$/.exec(path);
  if (repo) return repositoryPage(repo[1] ?? '', params);
  if (session.signIn && !session.user && session.auth) {
    // Anonymous callers may see something (the access rules decide), else the sign-in page.
    try {
      await api('GET', '/ui/api/repositories?n=1');
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return signInPage();
    }
  }
  return repositoriesPage(params);
}

async function start() {
  try {
    session = await api('GET', '/ui/api/session');
  } catch (err) {
    show(failure(err));
    return;
  }
  renderWho();
  addEventListener('hashchange', () => void route());
  await route();
}

void start();
