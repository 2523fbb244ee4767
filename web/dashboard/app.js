// app.js — the behaviour of the dojo dashboard (index.html). No framework, no
// build step: plain DOM calls, and every value from the server is placed with
// textContent, never parsed as HTML.
//
// Every call goes to this origin: POST /api/function (format "json") with
// `Authorization: Convex <admin key>` — or `Convex <key>:<base64 identity>`
// to run a function as a user — and the two dashboard endpoints
// GET /dashboard/api/functions and GET /dashboard/api/logs?after=N.
// The admin key lives in sessionStorage (this tab only); it never goes into
// a URL, the page or the console. A refused key signs the page out.
'use strict';

(() => {
  const KEY_STORAGE = 'dojo.dashboard.adminKey';
  const LOG_POLL_MS = 2000;
  const LOG_LINES_SHOWN_MAX = 2000;
  const TABS = ['tables', 'files', 'functions', 'env', 'credits', 'logs'];
  const FILES_PAGE_ITEMS = 24;
  const ENV_HELP = {
    CLERK_ISSUER_URL: 'The Clerk Frontend API URL; tokens must carry exactly this iss.',
    AUTH_APPLICATION_ID: 'The required aud (the Clerk JWT template name). Default: convex.',
    SIGNUP_CREDITS: 'Credits a new user starts with. Default: 0.',
    PRICING: 'JSON: {"default": 1, "models": {"<model>": <credits>}}. Default: {"default":1}.',
    MAX_ATTEMPTS: 'Claims of one run before a lost lease fails it. Default: 3.',
    FILE_MAX_BYTES: 'The largest file an upload may store, in bytes. Default: 104857600 (100 MiB).',
    WORKER_KEY: 'The key `dojo worker` uses (32+ characters): it may only run the worker functions and upload.',
  };

  const $ = (id) => document.getElementById(id);

  const state = {
    key: null,
    tab: null,
    functions: [],
    tables: [],
    browse: { table: null, cursors: [null], index: 0, next: null, isDone: true, id: '' },
    files: { cursors: [null], index: 0, next: null, isDone: true },
    logs: { next: 0, timer: null, busy: false, generation: 0 },
  };

  // --- small DOM helpers -----------------------------------------------------

  /** An element with attributes (class, text, dataset, on…) and children. */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (value === undefined || value === null) continue;
      if (name === 'text') node.textContent = value;
      else if (name === 'class') node.className = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else if (name === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(name, value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }

  function clear(node) {
    node.replaceChildren();
    return node;
  }

  const pretty = (value) => JSON.stringify(value, null, 2);

  function formatTime(ms) {
    if (typeof ms !== 'number') return '';
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace('T', ' ').replace('Z', ' UTC');
  }

  function showBanner(message) {
    const banner = $('banner');
    banner.textContent = message || '';
    banner.hidden = !message;
  }

  // --- talking to the server ---------------------------------------------------

  class KeyRefused extends Error {}

  /** Standard base64 of a string's UTF-8 bytes. */
  function base64Utf8(text) {
    let binary = '';
    for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
    return btoa(binary);
  }

  /** The identity sent after the admin key to act as a user. */
  function identityFor(tokenIdentifier) {
    const bar = tokenIdentifier.indexOf('|');
    const identity = { tokenIdentifier };
    if (bar > 0) {
      identity.issuer = tokenIdentifier.slice(0, bar);
      identity.subject = tokenIdentifier.slice(bar + 1);
    }
    return identity;
  }

  function authorization(asUser) {
    if (!asUser) return `Convex ${state.key}`;
    return `Convex ${state.key}:${base64Utf8(JSON.stringify(identityFor(asUser)))}`;
  }

  /** One HTTP call; resolves {json, requestId}; throws KeyRefused on a 401
   *  BadAdminKey, an Error with the server's message on any other failure. */
  async function request(method, url, { body, asUser } = {}) {
    const headers = { Authorization: authorization(asUser) };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (err) {
      throw new Error(`The server did not answer (${err.message}). Is dojo still running?`);
    }
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const requestId = res.headers.get('X-Request-Id');
    if (res.status === 401 && json && json.code === 'BadAdminKey') throw new KeyRefused(json.message);
    if (!res.ok) {
      const message = json && json.message ? json.message : `HTTP ${res.status}`;
      throw new Error(`${message}${requestId ? ` (request ${requestId})` : ''}`);
    }
    return { json, requestId };
  }

  /** Runs a function; resolves the whole UdfResponse plus requestId. */
  async function runFunction(path, args, asUser) {
    const { json, requestId } = await request('POST', '/api/function', {
      body: { path, args, format: 'json' },
      asUser,
    });
    return { ...json, requestId };
  }

  /** Runs a function as admin; resolves its value or throws its error
   *  (err.data holds the errorData). */
  async function call(path, args = {}) {
    const r = await runFunction(path, args);
    if (r.status === 'success') return r.value;
    const err = new Error(r.errorMessage);
    err.data = r.errorData;
    throw err;
  }

  /** Wraps an event handler: a refused key signs out; other errors go to
   *  report (default: the banner). */
  function guarded(fn, report = showBanner) {
    return async (...args) => {
      try {
        await fn(...args);
      } catch (err) {
        if (err instanceof KeyRefused) signOut(err.message);
        else report(err.message || String(err));
      }
    };
  }

  // --- sign in and out ------------------------------------------------------------

  function showOnly(id) {
    for (const section of ['loading', 'login', 'app']) $(section).hidden = section !== id;
    $('sign-out').hidden = id !== 'app';
  }

  async function signIn(key) {
    state.key = key;
    try {
      const { json } = await request('GET', '/dashboard/api/functions');
      state.functions = json.functions;
    } catch (err) {
      state.key = null;
      throw err;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    showOnly('app');
    renderFunctionList();
    selectTab(TABS.includes(location.hash.slice(1)) ? location.hash.slice(1) : 'tables');
  }

  function signOut(message = '') {
    stopLogs();
    state.key = null;
    sessionStorage.removeItem(KEY_STORAGE);
    $('admin-key').value = '';
    $('login-error').textContent = message;
    showOnly('login');
    $('admin-key').focus();
  }

  // --- tabs ----------------------------------------------------------------------------

  const tabLoaders = {
    tables: () => loadTables(),
    files: () => loadFiles(),
    functions: () => {},
    env: () => loadEnv(),
    credits: () => verifyLedger(),
    logs: () => startLogs(),
  };

  function selectTab(name) {
    if (state.tab === 'logs' && name !== 'logs') stopLogs();
    state.tab = name;
    showBanner('');
    for (const button of document.querySelectorAll('[data-tab]')) {
      button.setAttribute('aria-selected', String(button.dataset.tab === name));
    }
    for (const tab of TABS) $(`tab-${tab}`).hidden = tab !== name;
    if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
    guarded(tabLoaders[name])();
  }

  // --- Tables ------------------------------------------------------------------------------

  async function loadTables() {
    state.tables = await call('_system:tables');
    const list = clear($('table-list'));
    for (const t of state.tables) {
      list.append(
        el(
          'li',
          {},
          el(
            'button',
            {
              type: 'button',
              class: 'item',
              dataset: { table: t.name },
              'aria-current': String(t.name === state.browse.table),
              onclick: guarded(() => openTable(t.name)),
            },
            el('span', { text: t.name }),
            el('span', { class: 'count', text: String(t.count) }),
          ),
        ),
      );
    }
    if (!state.browse.table && state.tables.length) await openTable(state.tables[0].name);
    else if (state.browse.table) await loadPage();
  }

  async function openTable(name) {
    Object.assign(state.browse, { table: name, cursors: [null], index: 0, id: '' });
    $('filter-id').value = '';
    for (const b of document.querySelectorAll('#table-list [data-table]')) {
      b.setAttribute('aria-current', String(b.dataset.table === name));
    }
    await loadPage();
  }

  async function loadPage() {
    const b = state.browse;
    if (!b.table) return;
    const numItems = Number($('page-size').value);
    const args = { table: b.table, paginationOpts: { numItems, cursor: b.cursors[b.index] } };
    if (b.id) args.id = b.id;
    const result = await call('_system:browse', args);
    b.isDone = result.isDone;
    b.next = result.continueCursor;
    $('browse-title').textContent = b.table;
    const count = state.tables.find((t) => t.name === b.table)?.count;
    $('browse-info').textContent = b.id
      ? `Documents with _id ${b.id}`
      : `Newest first${count === undefined ? '' : ` · ${count} document${count === 1 ? '' : 's'}`}`;
    renderDocs(result.page);
    $('prev-page').disabled = b.id !== '' || b.index === 0;
    $('next-page').disabled = b.id !== '' || result.isDone;
    $('page-info').textContent = b.id ? '' : `Page ${b.index + 1}`;
  }

  function renderDocs(page) {
    const docs = clear($('docs'));
    if (!page.length) {
      docs.append(el('p', { class: 'muted empty', text: 'No documents.' }));
      return;
    }
    for (const doc of page) {
      const article = el(
        'article',
        { class: 'doc', dataset: { id: doc._id } },
        el(
          'header',
          {},
          el('code', { text: doc._id }),
          el('span', { class: 'muted', text: formatTime(doc._creationTime) }),
        ),
      );
      const output = state.browse.table === 'runs' ? runOutput(doc) : null;
      if (output) article.append(el('div', { class: 'output' }, output));
      article.append(el('pre', { text: pretty(doc) }));
      docs.append(article);
    }
  }

  // --- stored files: previews ----------------------------------------------------------------

  /** The URL of a stored file, on this deployment. */
  const fileUrl = (storageId) => `${location.origin}/api/storage/${encodeURIComponent(storageId)}`;

  /** An <img> or <video> of a file of this origin, or a link when it is
   *  neither (or lives elsewhere: the page loads nothing from other origins). */
  function preview(url, contentType, label) {
    const sameOrigin = url.startsWith(`${location.origin}/`);
    if (sameOrigin && /^image\//.test(contentType)) {
      return el('a', { href: url, target: '_blank', rel: 'noopener' }, el('img', { src: url, alt: label, loading: 'lazy' }));
    }
    if (sameOrigin && /^video\//.test(contentType)) {
      return el('video', { src: url, controls: true, preload: 'metadata', title: label });
    }
    return el('a', { href: url, target: '_blank', rel: 'noopener noreferrer', text: label });
  }

  /** A run's output, shown inline: its stored file (a picture, or a video
   *  when it does not decode as one), or the URL it names. */
  function runOutput(run) {
    if (run.outputStorageId) {
      const url = fileUrl(run.outputStorageId);
      const img = el('img', { src: url, alt: `output of run ${run._id}`, loading: 'lazy' });
      img.addEventListener(
        'error',
        () => img.replaceWith(el('video', { src: url, controls: true, preload: 'metadata' })),
        { once: true },
      );
      return el('a', { href: url, target: '_blank', rel: 'noopener' }, img);
    }
    if (run.output) {
      const type = /\.(mp4|webm|mov)(\?|$)/i.test(run.output) ? 'video/mp4' : 'image/*';
      return preview(run.output, type, run.output);
    }
    return null;
  }

  // --- Files --------------------------------------------------------------------------------

  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  async function loadFiles() {
    const f = state.files;
    const result = await call('_system:storageList', {
      paginationOpts: { numItems: FILES_PAGE_ITEMS, cursor: f.cursors[f.index] },
    });
    f.isDone = result.isDone;
    f.next = result.continueCursor;
    const grid = clear($('files'));
    if (!result.page.length) grid.append(el('p', { class: 'muted empty', text: 'No files stored yet.' }));
    for (const file of result.page) {
      const type = file.contentType || 'application/octet-stream';
      grid.append(
        el(
          'article',
          { class: 'file', dataset: { id: file._id } },
          el('div', { class: 'thumb' }, preview(fileUrl(file._id), type, file._id)),
          el(
            'dl',
            {},
            el('dt', { text: 'id' }),
            el('dd', {}, el('code', { text: file._id })),
            el('dt', { text: 'type' }),
            el('dd', { text: `${type} · ${formatBytes(file.size)}` }),
            el('dt', { text: 'from' }),
            el('dd', { text: file.owner || 'a worker or the admin' }),
            el('dt', { text: 'output of' }),
            el('dd', { text: file.outputOf || '—' }),
            el('dt', { text: 'stored' }),
            el('dd', { text: formatTime(file._creationTime) }),
            el('dt', { text: 'sha256' }),
            el('dd', {}, el('code', { class: 'hash', text: file.sha256 })),
          ),
        ),
      );
    }
    $('files-info').textContent = `Newest first · page ${f.index + 1}`;
    $('files-prev').disabled = f.index === 0;
    $('files-next').disabled = result.isDone;
    $('files-page').textContent = `Page ${f.index + 1}`;
  }

  // --- Functions -------------------------------------------------------------------------

  /** A TypeScript-like spelling of a validator description. */
  function typeText(t, indent = '') {
    const range = (lo, hi, unit = '') =>
      lo === undefined && hi === undefined ? '' : ` (${lo ?? '…'}–${hi ?? '…'}${unit})`;
    switch (t.type) {
      case 'any':
        return t.ts || 'any';
      case 'integer':
      case 'number':
        return t.type + range(t.min, t.max);
      case 'string':
        return 'string' + range(t.minLength, t.maxLength, ' chars');
      case 'id':
        return `Id<"${t.table}">`;
      case 'array':
        return `${typeText(t.items, indent)}[]`;
      case 'record':
        return t.ts || `Record<string, ${typeText(t.values, indent)}>`;
      case 'enum':
        return t.values.map((v) => JSON.stringify(v)).join(' | ');
      case 'union':
        return t.options.map((o) => typeText(o, indent)).join(' | ');
      case 'object': {
        if (!t.fields.length) return '{}';
        const inner = `${indent}  `;
        const lines = t.fields.map(
          (f) => `${inner}${f.name}${f.optional ? '?' : ''}: ${typeText(f.type, inner)};`,
        );
        return `{\n${lines.join('\n')}\n${indent}}`;
      }
      default:
        return t.type;
    }
  }

  /** Arguments to start from: every required field with a placeholder. */
  function exampleOf(t) {
    switch (t.type) {
      case 'object': {
        const out = {};
        for (const f of t.fields) if (!f.optional) out[f.name] = exampleOf(f.type);
        return out;
      }
      case 'integer':
      case 'number':
        return t.min !== undefined && t.min > 0 ? t.min : 0;
      case 'string':
      case 'id':
        return '';
      case 'boolean':
        return false;
      case 'array':
        return [];
      case 'record':
        return {};
      case 'enum':
        return t.values[0];
      case 'union':
        return t.options.some((o) => o.type === 'null') ? null : exampleOf(t.options[0]);
      default:
        return null;
    }
  }

  function renderFunctionList() {
    const filter = $('fn-search').value.trim().toLowerCase();
    const list = clear($('fn-list'));
    const select = $('fn-path');
    const chosen = select.value;
    clear(select);
    for (const fn of state.functions) {
      select.append(el('option', { value: fn.path, text: fn.path }));
      if (filter && !fn.path.toLowerCase().includes(filter)) continue;
      list.append(
        el(
          'li',
          {},
          el(
            'button',
            {
              type: 'button',
              class: 'item',
              dataset: { path: fn.path },
              title: fn.doc,
              onclick: () => chooseFunction(fn.path, true),
            },
            el('span', { text: fn.path }),
            el('span', { class: `badge ${fn.kind}`, text: fn.kind }),
            fn.visibility === 'internal' ? el('span', { class: 'badge internal', text: 'admin' }) : null,
          ),
        ),
      );
    }
    if (state.functions.length) chooseFunction(chosen || state.functions[0].path, false);
  }

  let lastExample = '{}';

  function chooseFunction(path, resetArgs) {
    const fn = state.functions.find((f) => f.path === path);
    if (!fn) return;
    $('fn-path').value = path;
    for (const b of document.querySelectorAll('#fn-list [data-path]')) {
      b.setAttribute('aria-current', String(b.dataset.path === path));
    }
    const badges = `${fn.kind}${fn.visibility === 'internal' ? ', admin only' : ''}`;
    $('fn-doc').textContent = `${fn.doc || ''} (${badges})`;
    $('fn-hint').textContent = `args: ${typeText(fn.args)}${fn.returns ? `\nreturns: ${fn.returns}` : ''}`;
    const example = pretty(exampleOf(fn.args));
    const args = $('fn-args');
    if (resetArgs || args.value.trim() === '' || args.value === lastExample) args.value = example;
    lastExample = example;
  }

  async function submitRun(event) {
    event.preventDefault();
    const path = $('fn-path').value;
    const asUser = $('fn-as-user').value.trim();
    const out = $('fn-result');
    let args;
    try {
      args = JSON.parse($('fn-args').value || '{}');
    } catch (err) {
      showResult(out, 'error', 'The arguments are not valid JSON', err.message);
      return;
    }
    $('fn-run').disabled = true;
    $('fn-status').textContent = 'Running…';
    const started = performance.now();
    try {
      const r = await runFunction(path, args, asUser || undefined);
      const ms = (performance.now() - started).toFixed(0);
      const who = asUser ? `as ${asUser}` : 'as admin';
      $('fn-status').textContent = `${path} ${who}: ${r.status} in ${ms} ms (request ${r.requestId})`;
      if (r.status === 'success') {
        showResult(out, 'success', 'Result', pretty(r.value), r.logLines);
      } else {
        const data = r.errorData === undefined ? null : `errorData: ${pretty(r.errorData)}`;
        showResult(out, 'error', r.errorMessage, data, r.logLines);
      }
    } catch (err) {
      if (err instanceof KeyRefused) return signOut(err.message);
      $('fn-status').textContent = '';
      showResult(out, 'error', err.message, null);
    } finally {
      $('fn-run').disabled = false;
    }
  }

  function showResult(box, kind, title, body, logLines) {
    clear(box).hidden = false;
    box.className = `card result ${kind}`;
    box.append(el('h3', { class: 'result-title', text: title }));
    if (body) box.append(el('pre', { class: 'result-body', text: body }));
    if (logLines && logLines.length) {
      box.append(el('h3', { text: 'Log lines' }), el('pre', { text: logLines.join('\n') }));
    }
  }

  // --- Deployment variables ----------------------------------------------------------------

  async function loadEnv() {
    const vars = await call('_system:envList');
    const rows = clear($('env-rows'));
    $('env-empty').hidden = vars.length > 0;
    for (const v of vars) {
      const remove = el('button', { type: 'button', class: 'secondary small danger', text: 'Remove' });
      remove.addEventListener(
        'click',
        guarded(async () => {
          // Two clicks: the first asks, the second removes.
          if (remove.dataset.armed !== 'yes') {
            remove.dataset.armed = 'yes';
            remove.textContent = 'Really remove?';
            setTimeout(() => {
              remove.dataset.armed = '';
              remove.textContent = 'Remove';
            }, 4000);
            return;
          }
          await call('_system:envRemove', { name: v.name });
          $('env-status').textContent = `Removed ${v.name}.`;
          await loadEnv();
        }, envError),
      );
      rows.append(
        el(
          'tr',
          { dataset: { name: v.name } },
          el('td', {}, el('code', { text: v.name })),
          el('td', { class: 'value', text: v.value, title: 'Click to edit', onclick: () => editEnv(v) }),
          el('td', { class: 'actions' }, remove),
        ),
      );
    }
  }

  function editEnv(v) {
    $('env-name').value = v.name;
    $('env-value').value = v.value;
    showEnvHelp();
    $('env-value').focus();
  }

  function showEnvHelp() {
    $('env-help').textContent = ENV_HELP[$('env-name').value.trim()] || '';
  }

  function envError(message) {
    const status = $('env-status');
    status.className = 'error';
    status.textContent = message;
  }

  async function submitEnv(event) {
    event.preventDefault();
    const name = $('env-name').value.trim();
    const value = $('env-value').value;
    const status = $('env-status');
    status.className = '';
    status.textContent = 'Saving…';
    await call('_system:envSet', { name, value });
    status.textContent = `Set ${name}.`;
    await loadEnv();
  }

  // --- Credits -------------------------------------------------------------------------------

  async function submitGrant(event) {
    event.preventDefault();
    const out = clear($('grant-result'));
    const args = { [$('grant-by').value]: $('grant-who').value.trim() };
    const amount = Number($('grant-amount').value);
    args.amount = amount;
    const note = $('grant-note').value.trim();
    if (note) args.note = note;
    try {
      const r = await call('admin:grantCredits', args);
      out.className = 'success';
      out.append(
        el('p', {}, `Granted ${amount} credit${amount === 1 ? '' : 's'} to user `, el('code', { text: r.userId }), '.'),
        el('p', { class: 'balance' }, 'New balance: ', el('strong', { id: 'grant-balance', text: String(r.balance) })),
        el('p', { class: 'muted' }, 'Ledger row ', el('code', { text: r.transactionId })),
      );
      await verifyLedger();
    } catch (err) {
      if (err instanceof KeyRefused) throw err;
      out.className = 'error';
      out.append(el('p', { text: err.message }));
    }
  }

  async function verifyLedger() {
    const out = clear($('ledger-result'));
    const r = await call('admin:verifyLedger');
    out.className = r.ok ? 'success' : 'error';
    const users = `${r.usersChecked} user${r.usersChecked === 1 ? '' : 's'} checked`;
    out.append(el('p', { text: r.ok ? `Ledger OK — ${users}.` : `Ledger mismatch — ${users}.` }));
    if (r.mismatches.length) {
      out.append(
        el(
          'table',
          { class: 'grid' },
          el('thead', {}, el('tr', {}, el('th', { text: 'userId' }), el('th', { text: 'credits' }), el('th', { text: 'ledger sum' }))),
          el(
            'tbody',
            {},
            r.mismatches.map((m) =>
              el('tr', {}, el('td', {}, el('code', { text: m.userId })), el('td', { text: String(m.credits) }), el('td', { text: String(m.ledgerSum) })),
            ),
          ),
        ),
      );
    }
  }

  // --- Logs ------------------------------------------------------------------------------------

  function levelClass(text) {
    const m = /^\S+Z (\w+)/.exec(text);
    return m ? `line ${m[1]}` : 'line';
  }

  async function pollLogs() {
    if (state.logs.busy) return;
    state.logs.busy = true;
    try {
      const { json } = await request('GET', `/dashboard/api/logs?after=${state.logs.next}`);
      const box = $('log-lines');
      for (const line of json.lines) {
        box.append(el('div', { class: levelClass(line.text), dataset: { seq: String(line.seq) }, text: line.text }));
      }
      while (box.childElementCount > LOG_LINES_SHOWN_MAX) box.firstElementChild.remove();
      state.logs.next = json.next;
      if (json.lines.length && $('logs-follow').checked) box.scrollTop = box.scrollHeight;
      $('logs-status').className = 'muted';
      $('logs-status').textContent = `Updated ${new Date().toLocaleTimeString()} · refreshes every ${LOG_POLL_MS / 1000} s`;
    } catch (err) {
      if (err instanceof KeyRefused) throw err;
      $('logs-status').className = 'error';
      $('logs-status').textContent = err.message;
    } finally {
      state.logs.busy = false;
    }
  }

  // One polling loop at a time: a loop stops when its generation is stale.
  function startLogs() {
    stopLogs();
    const generation = state.logs.generation;
    const tick = guarded(async () => {
      await pollLogs();
      if (generation === state.logs.generation && state.tab === 'logs' && state.key) {
        state.logs.timer = setTimeout(tick, LOG_POLL_MS);
      }
    });
    tick();
  }

  function stopLogs() {
    clearTimeout(state.logs.timer);
    state.logs.timer = null;
    state.logs.generation += 1;
  }

  // --- wiring -------------------------------------------------------------------------------------

  function wire() {
    $('deployment').textContent = location.host;
    $('login-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const key = $('admin-key').value.trim();
      $('login-error').textContent = '';
      $('login-submit').disabled = true;
      try {
        await signIn(key);
      } catch (err) {
        $('login-error').textContent = err.message;
      } finally {
        $('login-submit').disabled = false;
      }
    });
    $('sign-out').addEventListener('click', () => signOut(''));
    for (const button of document.querySelectorAll('[data-tab]')) {
      button.addEventListener('click', () => selectTab(button.dataset.tab));
    }
    $('tables-refresh').addEventListener('click', guarded(loadTables));
    $('files-refresh').addEventListener('click', guarded(loadFiles));
    $('files-next').addEventListener(
      'click',
      guarded(async () => {
        const f = state.files;
        if (f.isDone) return;
        f.cursors[f.index + 1] = f.next;
        f.index += 1;
        await loadFiles();
      }),
    );
    $('files-prev').addEventListener(
      'click',
      guarded(async () => {
        if (state.files.index === 0) return;
        state.files.index -= 1;
        await loadFiles();
      }),
    );
    $('id-filter').addEventListener(
      'submit',
      guarded(async (event) => {
        event.preventDefault();
        Object.assign(state.browse, { id: $('filter-id').value.trim(), cursors: [null], index: 0 });
        await loadPage();
      }),
    );
    $('filter-clear').addEventListener(
      'click',
      guarded(async () => {
        $('filter-id').value = '';
        Object.assign(state.browse, { id: '', cursors: [null], index: 0 });
        await loadPage();
      }),
    );
    $('next-page').addEventListener(
      'click',
      guarded(async () => {
        const b = state.browse;
        if (b.isDone) return;
        b.cursors[b.index + 1] = b.next;
        b.index += 1;
        await loadPage();
      }),
    );
    $('prev-page').addEventListener(
      'click',
      guarded(async () => {
        if (state.browse.index === 0) return;
        state.browse.index -= 1;
        await loadPage();
      }),
    );
    $('page-size').addEventListener(
      'change',
      guarded(async () => {
        Object.assign(state.browse, { cursors: [null], index: 0 });
        await loadPage();
      }),
    );
    $('fn-search').addEventListener('input', renderFunctionList);
    $('fn-path').addEventListener('change', () => chooseFunction($('fn-path').value, true));
    $('run-form').addEventListener('submit', submitRun);
    $('env-form').addEventListener('submit', guarded(submitEnv, envError));
    $('env-name').addEventListener('input', showEnvHelp);
    $('env-refresh').addEventListener('click', guarded(loadEnv));
    $('grant-form').addEventListener('submit', guarded(submitGrant));
    $('verify-ledger').addEventListener('click', guarded(verifyLedger));
    $('logs-clear').addEventListener('click', () => clear($('log-lines')));
    window.addEventListener('hashchange', () => {
      const tab = location.hash.slice(1);
      if (state.key && TABS.includes(tab) && tab !== state.tab) selectTab(tab);
    });
  }

  async function start() {
    wire();
    const saved = sessionStorage.getItem(KEY_STORAGE);
    if (!saved) return signOut('');
    try {
      await signIn(saved);
    } catch (err) {
      signOut(err instanceof KeyRefused ? 'The saved admin key was refused; enter it again.' : err.message);
    }
  }

  start();
})();
