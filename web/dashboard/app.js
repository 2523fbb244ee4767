// app.js — the behaviour of the dojo dashboard (index.html). No framework, no
// build step: plain DOM calls, and every value from the server is placed with
// textContent, never parsed as HTML.
//
// The Tables grid and the Overview charts are live: they subscribe to their
// queries through the sync protocol (sync.js, one WebSocket authenticated
// with the admin key), so a run changing status or a balance changing shows
// without Refresh. The charts are drawn by charts.js; requests and errors
// come from GET /metrics, sampled every few seconds while Overview is open.
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
  const TABS = ['tables', 'files', 'overview', 'functions', 'env', 'credits', 'logs'];
  const FILES_PAGE_ITEMS = 24;
  const METRICS_POLL_MS = 5000;
  const METRICS_SAMPLES_MAX = 120; // 10 minutes at 5 s
  const OVERVIEW_MINUTES = 60;
  const OVERVIEW_DAYS = 14;
  const MINUTE_MS = 60_000;
  const DAY_MS = 86_400_000;
  const FLASH_MS = 1500;
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
    browse: {
      table: null,
      cursors: [null],
      index: 0,
      next: null,
      isDone: true,
      id: '',
      sortIndex: 'by_creation_time',
      order: 'desc',
      unsubscribe: null,
      generation: 0,
      shown: new Map(), // _id → JSON text of the row shown, to flash changes
      expanded: new Set(), // "<_id> <field>" of nested values opened
    },
    files: { cursors: [null], index: 0, next: null, isDone: true },
    sync: null, // the SyncClient while signed in
    tablesUnsubscribe: null,
    overview: { unsubscribe: [], timer: null, windowTimer: null, samples: [], generation: 0 },
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
    startSync(key);
    showOnly('app');
    renderFunctionList();
    selectTab(TABS.includes(location.hash.slice(1)) ? location.hash.slice(1) : 'tables');
  }

  function signOut(message = '') {
    stopLogs();
    stopOverview();
    stopBrowse();
    if (state.tablesUnsubscribe) state.tablesUnsubscribe();
    state.tablesUnsubscribe = null;
    if (state.sync) state.sync.close();
    state.sync = null;
    state.key = null;
    sessionStorage.removeItem(KEY_STORAGE);
    $('admin-key').value = '';
    $('login-error').textContent = message;
    showOnly('login');
    $('admin-key').focus();
  }

  // --- tabs ----------------------------------------------------------------------------

  /** The sync client of this sign-in: live queries for Tables and Overview. */
  function startSync(key) {
    if (state.sync) state.sync.close();
    state.sync = new window.DojoSync.SyncClient({
      key,
      onStatus: (status, detail) => showLiveStatus(status, detail),
      onAuthError: (message) => signOut(`The server refused the admin key on the live connection: ${message}`),
    });
  }

  function showLiveStatus(status, detail) {
    const box = $('live-status');
    box.className = `live-status ${status}`;
    box.textContent =
      status === 'live' ? 'Live' : status === 'connecting' ? 'Connecting…' : `Offline${detail ? ` (${detail})` : ''}`;
  }

  const tabLoaders = {
    tables: () => loadTables(),
    files: () => loadFiles(),
    overview: () => startOverview(),
    functions: () => {},
    env: () => loadEnv(),
    credits: () => verifyLedger(),
    logs: () => startLogs(),
  };

  function selectTab(name) {
    if (state.tab === 'logs' && name !== 'logs') stopLogs();
    if (state.tab === 'overview' && name !== 'overview') stopOverview();
    if (state.tab === 'tables' && name !== 'tables') {
      stopBrowse();
      if (state.tablesUnsubscribe) state.tablesUnsubscribe();
      state.tablesUnsubscribe = null;
    }
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

  function renderTableList() {
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
  }

  /** The tables and their counts; kept live while the tab is open. */
  async function loadTables() {
    state.tables = await call('_system:tables');
    renderTableList();
    if (!state.tablesUnsubscribe && state.sync) {
      state.tablesUnsubscribe = state.sync.subscribe('_system:tables', {}, (tables) => {
        state.tables = tables;
        for (const t of tables) {
          const count = document.querySelector(`#table-list [data-table="${t.name}"] .count`);
          if (count) count.textContent = String(t.count);
        }
        updateBrowseInfo();
      });
    }
    if (!state.browse.table && state.tables.length) await openTable(state.tables[0].name);
    else if (state.browse.table) await loadPage();
  }

  const tableInfo = (name) => state.tables.find((t) => t.name === name);

  async function openTable(name) {
    Object.assign(state.browse, {
      table: name,
      cursors: [null],
      index: 0,
      id: '',
      sortIndex: 'by_creation_time',
      order: 'desc',
    });
    state.browse.shown.clear();
    state.browse.expanded.clear();
    $('filter-id').value = '';
    for (const b of document.querySelectorAll('#table-list [data-table]')) {
      b.setAttribute('aria-current', String(b.dataset.table === name));
    }
    renderSortControls();
    await loadPage();
  }

  function renderSortControls() {
    const b = state.browse;
    const select = clear($('sort-index'));
    const info = tableInfo(b.table);
    for (const ix of info?.indexes || [{ name: 'by_creation_time', fields: ['_creationTime'] }]) {
      select.append(el('option', { value: ix.name, text: `${ix.name} (${ix.fields.join(', ')})` }));
    }
    select.value = b.sortIndex;
    const order = $('sort-order');
    order.dataset.order = b.order;
    order.textContent = b.order === 'desc' ? 'Descending' : 'Ascending';
  }

  async function sortBy(indexName, order) {
    Object.assign(state.browse, { sortIndex: indexName, order, cursors: [null], index: 0 });
    renderSortControls();
    await loadPage();
  }

  function browseArgs() {
    const b = state.browse;
    const numItems = Number($('page-size').value);
    const args = { table: b.table, paginationOpts: { numItems, cursor: b.cursors[b.index] } };
    if (b.id) args.id = b.id;
    if (b.sortIndex !== 'by_creation_time') args.index = b.sortIndex;
    if (b.order !== 'desc') args.order = b.order;
    return args;
  }

  function stopBrowse() {
    if (state.browse.unsubscribe) state.browse.unsubscribe();
    state.browse.unsubscribe = null;
    state.browse.generation += 1;
  }

  /** The page: fetched once over HTTP (shown at once), then subscribed to
   *  over the sync connection, which pushes every new version of it. */
  async function loadPage() {
    const b = state.browse;
    if (!b.table) return;
    stopBrowse();
    const generation = b.generation;
    const args = browseArgs();
    let pushed = false;
    if (state.sync) {
      b.unsubscribe = state.sync.subscribe(
        '_system:browse',
        args,
        (result) => {
          if (generation !== b.generation) return;
          pushed = true;
          showPage(result);
        },
        (message) => {
          if (generation === b.generation) showBanner(message);
        },
      );
    }
    const result = await call('_system:browse', args);
    if (generation === b.generation && !pushed) showPage(result);
  }

  function updateBrowseInfo() {
    const b = state.browse;
    if (!b.table) return;
    const count = tableInfo(b.table)?.count;
    const orderText =
      b.sortIndex === 'by_creation_time'
        ? b.order === 'desc'
          ? 'Newest first'
          : 'Oldest first'
        : `By ${b.sortIndex}, ${b.order === 'desc' ? 'descending' : 'ascending'}`;
    $('browse-info').textContent = b.id
      ? `Documents with _id ${b.id}`
      : `${orderText}${count === undefined ? '' : ` · ${count} document${count === 1 ? '' : 's'}`}`;
  }

  function showPage(result) {
    const b = state.browse;
    b.isDone = result.isDone;
    b.next = result.continueCursor;
    $('browse-title').textContent = b.table;
    updateBrowseInfo();
    renderGrid(result.page);
    $('prev-page').disabled = b.id !== '' || b.index === 0;
    $('next-page').disabled = b.id !== '' || result.isDone;
    $('page-info').textContent = b.id ? '' : `Page ${b.index + 1}`;
  }

  /** The grid's columns: _id, the table's declared fields, any other field
   *  the page's documents carry, _creationTime. */
  function columnsFor(page) {
    const declared = tableInfo(state.browse.table)?.fields || [];
    const cols = ['_id', ...declared];
    for (const doc of page) {
      for (const k of Object.keys(doc)) if (!cols.includes(k) && k !== '_creationTime') cols.push(k);
    }
    cols.push('_creationTime');
    return cols;
  }

  /** The fields that lead an index: a click on their header sorts by it. */
  function leadingIndex(field) {
    const info = tableInfo(state.browse.table);
    return (info?.indexes || []).find((ix) => ix.fields[0] === field);
  }

  function headerCell(field) {
    const ix = leadingIndex(field);
    const b = state.browse;
    if (!ix) return el('th', { text: field });
    const active = b.sortIndex === ix.name;
    const arrow = active ? (b.order === 'desc' ? ' ↓' : ' ↑') : ' ↕';
    return el(
      'th',
      { dataset: { field } },
      field,
      el('button', {
        type: 'button',
        class: 'sort',
        title: `Sort by the index ${ix.name} (${ix.fields.join(', ')})`,
        'aria-pressed': String(active),
        dataset: { index: ix.name },
        text: arrow,
        onclick: guarded(() => sortBy(ix.name, active && b.order === 'desc' ? 'asc' : 'desc')),
      }),
    );
  }

  function nestedCell(doc, field, value) {
    const key = `${doc._id} ${field}`;
    const size = Array.isArray(value) ? value.length : Object.keys(value).length;
    const label = Array.isArray(value) ? `[…] ${size} item${size === 1 ? '' : 's'}` : `{…} ${size} key${size === 1 ? '' : 's'}`;
    const open = state.browse.expanded.has(key);
    const body = el('div', { class: 'json', text: pretty(value) });
    body.hidden = !open;
    const toggle = el('button', {
      type: 'button',
      class: 'nested',
      'aria-expanded': String(open),
      title: open ? 'Collapse' : 'Expand',
      text: label,
      onclick: () => {
        const now = body.hidden;
        body.hidden = !now;
        toggle.setAttribute('aria-expanded', String(now));
        if (now) state.browse.expanded.add(key);
        else state.browse.expanded.delete(key);
      },
    });
    return el('td', { dataset: { field } }, toggle, body);
  }

  function valueCell(doc, field) {
    if (state.browse.table === 'runs' && field === 'outputStorageId' && doc.outputStorageId) {
      return el('td', { class: 'output', dataset: { field }, title: doc.outputStorageId }, runOutput(doc));
    }
    if (state.browse.table === 'runs' && field === 'output' && doc.output && !doc.outputStorageId) {
      return el('td', { class: 'output', dataset: { field } }, runOutput(doc));
    }
    if (!(field in doc)) return el('td', { class: 'absent', dataset: { field }, text: '—' });
    const value = doc[field];
    if (value !== null && typeof value === 'object') return nestedCell(doc, field, value);
    if (field === '_creationTime') {
      return el('td', { dataset: { field }, title: String(value), text: formatTime(value) });
    }
    const cls = state.browse.table === 'runs' && field === 'status' ? `status-${value}` : undefined;
    return el('td', { dataset: { field }, class: cls, text: typeof value === 'string' ? value : JSON.stringify(value) });
  }

  function renderGrid(page) {
    const docs = clear($('docs'));
    const b = state.browse;
    if (!page.length) {
      docs.append(el('p', { class: 'muted empty', text: 'No documents.' }));
      b.shown.clear();
      return;
    }
    const cols = columnsFor(page);
    const previous = b.shown;
    b.shown = new Map();
    const rows = page.map((doc) => {
      const text = JSON.stringify(doc);
      const changed = previous.size > 0 && previous.get(doc._id) !== text;
      b.shown.set(doc._id, text);
      const row = el(
        'tr',
        { class: changed ? 'doc flash' : 'doc', dataset: { id: doc._id } },
        cols.map((field) => valueCell(doc, field)),
        el('td', {}, el('details', { class: 'whole' }, el('summary', { text: 'JSON' }), el('pre', { text: pretty(doc) }))),
      );
      if (changed) setTimeout(() => row.classList.remove('flash'), FLASH_MS);
      return row;
    });
    docs.append(
      el(
        'table',
        { class: 'docgrid' },
        el('thead', {}, el('tr', {}, cols.map(headerCell), el('th', { text: 'document' }))),
        el('tbody', {}, rows),
      ),
    );
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
    const type = /\.(mp4|webm|mov)(\?|$)/i.test(run.output) ? 'video/mp4' : 'image/*';
    return preview(run.output, type, run.output);
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

  // --- Overview --------------------------------------------------------------------------------

  const RUN_SERIES = [
    { key: 'queued', label: 'queued', cls: 's-queued' },
    { key: 'processing', label: 'processing', cls: 's-processing' },
    { key: 'completed', label: 'completed', cls: 's-completed' },
    { key: 'failed', label: 'failed', cls: 's-failed' },
  ];
  const CREDIT_SERIES = [
    { key: 'granted', label: 'granted', cls: 's-granted' },
    { key: 'spent', label: 'spent on runs', cls: 's-spent' },
    { key: 'refunded', label: 'refunded', cls: 's-refunded' },
  ];
  const REQUEST_SERIES = [
    { key: 'requests', label: 'requests/s', cls: 's-requests' },
    { key: 'errors4', label: '4xx/s', cls: 's-errors4' },
    { key: 'errors5', label: '5xx/s and internal errors/s', cls: 's-errors5' },
  ];

  const minuteLabel = (t) => new Date(t).toTimeString().slice(0, 5);
  const dayLabel = (t) => new Date(t).toISOString().slice(5, 10);
  const secondLabel = (t) => new Date(t).toTimeString().slice(0, 8);

  /** Buckets from `from` to `to` (exclusive) every step, filled from answer rows. */
  function fill(rows, from, to, step, keys) {
    const byT = new Map(rows.map((r) => [r.t, r]));
    const out = [];
    for (let t = from; t < to; t += step) {
      const r = byT.get(t) || {};
      const p = { t };
      for (const k of keys) p[k] = r[k] || 0;
      out.push(p);
    }
    return out;
  }

  function coverageNote(result, what) {
    if (!result.truncated) return `${result.rowsRead} ${what}`;
    return `the newest ${result.rowBound} ${what} only (complete from ${formatTime(result.coveredFromMs)})`;
  }

  function subscribeOverview() {
    const o = state.overview;
    for (const u of o.unsubscribe) u();
    o.unsubscribe = [];
    if (!state.sync) return;
    const now = Date.now();
    const minuteFrom = Math.floor(now / MINUTE_MS) * MINUTE_MS - (OVERVIEW_MINUTES - 1) * MINUTE_MS;
    const dayFrom = Math.floor(now / DAY_MS) * DAY_MS - (OVERVIEW_DAYS - 1) * DAY_MS;
    const failed = (what) => (message) => showBanner(`${what}: ${message}`);
    o.unsubscribe.push(
      state.sync.subscribe(
        '_system:overviewRuns',
        { sinceMs: minuteFrom, bucketMs: MINUTE_MS },
        (r) => {
          // The window ends with the current minute (the clock may have moved
          // on since the subscription; it is renewed every minute).
          const to = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
          const points = fill(r.buckets, to - OVERVIEW_MINUTES * MINUTE_MS, to, MINUTE_MS, RUN_SERIES.map((s) => s.key));
          window.DojoCharts.bars($('chart-runs'), {
            points,
            series: RUN_SERIES,
            stacked: true,
            xLabel: minuteLabel,
            yLabel: 'runs created',
            title: `Runs created per minute over the last ${OVERVIEW_MINUTES} minutes, by status`,
          });
          $('runs-note').textContent = coverageNote(r, 'runs');
        },
        failed('Runs per minute'),
      ),
      state.sync.subscribe(
        '_system:overviewCredits',
        { sinceMs: dayFrom },
        (r) => {
          const to = Math.floor(Date.now() / DAY_MS) * DAY_MS + DAY_MS;
          const points = fill(r.days, to - OVERVIEW_DAYS * DAY_MS, to, DAY_MS, CREDIT_SERIES.map((s) => s.key));
          window.DojoCharts.bars($('chart-credits'), {
            points,
            series: CREDIT_SERIES,
            xLabel: dayLabel,
            yLabel: 'credits',
            title: `Credits granted, spent and refunded per day (UTC) over the last ${OVERVIEW_DAYS} days`,
          });
          $('credits-note').textContent = coverageNote(r, 'ledger rows');
        },
        failed('Credits per day'),
      ),
      state.sync.subscribe(
        '_system:overviewQueue',
        {},
        (q) => {
          $('queue-queued').textContent = `${q.queued}${q.queuedMore ? '+' : ''}`;
          $('queue-processing').textContent = `${q.processing}${q.processingMore ? '+' : ''}`;
          showOldestQueued(q.oldestQueuedAt);
        },
        failed('Queue'),
      ),
    );
  }

  function showOldestQueued(at) {
    state.overview.oldestQueuedAt = at;
    if (at === null || at === undefined) {
      $('queue-oldest').textContent = '—';
      $('queue-oldest-at').textContent = 'No run is waiting.';
      return;
    }
    const s = Math.max(0, Math.round((Date.now() - at) / 1000));
    $('queue-oldest').textContent = s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
    $('queue-oldest-at').textContent = `The oldest queued run was created ${formatTime(at)}.`;
  }

  /** Prometheus text → the totals the chart needs. */
  function parseMetrics(text) {
    const sample = { requests: 0, errors4: 0, errors5: 0, backup: {} };
    for (const line of text.split('\n')) {
      if (line.startsWith('#') || !line) continue;
      let m = /^dojo_http_requests_total\{route="[^"]*",status="(\d+)"\} (\d+)/.exec(line);
      if (m) {
        const n = Number(m[2]);
        sample.requests += n;
        if (m[1] >= '400' && m[1] < '500') sample.errors4 += n;
        if (m[1] >= '500') sample.errors5 += n;
        continue;
      }
      m = /^dojo_function_calls_total\{function="[^"]*",outcome="internal_error"\} (\d+)/.exec(line);
      if (m) {
        sample.errors5 += Number(m[1]);
        continue;
      }
      m = /^dojo_backup_last_success_(timestamp_seconds|size_bytes|duration_seconds) (\S+)/.exec(line);
      if (m) sample.backup[m[1]] = Number(m[2]);
    }
    return sample;
  }

  async function pollMetrics() {
    const o = state.overview;
    let text;
    try {
      const res = await fetch('/metrics', { cache: 'no-store', credentials: 'omit' });
      text = await res.text();
    } catch (err) {
      $('requests-note').textContent = `GET /metrics failed: ${err.message}`;
      return;
    }
    const sample = { t: Date.now(), ...parseMetrics(text) };
    o.samples.push(sample);
    if (o.samples.length > METRICS_SAMPLES_MAX) o.samples.shift();
    const points = [];
    for (let i = 1; i < o.samples.length; i++) {
      const a = o.samples[i - 1];
      const b = o.samples[i];
      const dt = (b.t - a.t) / 1000;
      if (dt <= 0) continue;
      const rate = (k) => Math.max(0, (b[k] - a[k]) / dt);
      points.push({ t: b.t, requests: rate('requests'), errors4: rate('errors4'), errors5: rate('errors5') });
    }
    if (points.length) {
      window.DojoCharts.lines($('chart-requests'), {
        points,
        series: REQUEST_SERIES,
        xLabel: secondLabel,
        yLabel: 'per second',
        title: 'HTTP requests and errors per second, from /metrics',
      });
    }
    $('requests-note').textContent = `from /metrics every ${METRICS_POLL_MS / 1000} s · ${o.samples.length} sample${o.samples.length === 1 ? '' : 's'}`;
    const bk = sample.backup;
    $('backup-status').textContent =
      bk.timestamp_seconds > 0
        ? `Last good backup ${formatTime(bk.timestamp_seconds * 1000)}: ${(bk.size_bytes / 1048576).toFixed(1)} MiB in ${bk.duration_seconds.toFixed(1)} s.`
        : bk.timestamp_seconds === 0
          ? 'Scheduled backups are on; none has finished yet.'
          : 'No scheduled backups (dojo serve --backup-dir).';
    if (o.oldestQueuedAt !== undefined) showOldestQueued(o.oldestQueuedAt);
  }

  function startOverview() {
    stopOverview();
    const o = state.overview;
    const generation = o.generation;
    subscribeOverview();
    // The windows move with the clock: subscribe again at each new minute.
    o.windowTimer = setInterval(subscribeOverview, MINUTE_MS);
    const tick = async () => {
      await pollMetrics();
      if (generation === o.generation && state.tab === 'overview' && state.key) {
        o.timer = setTimeout(tick, METRICS_POLL_MS);
      }
    };
    tick();
  }

  function stopOverview() {
    const o = state.overview;
    for (const u of o.unsubscribe) u();
    o.unsubscribe = [];
    clearTimeout(o.timer);
    clearInterval(o.windowTimer);
    o.timer = o.windowTimer = null;
    o.generation += 1;
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
    $('sort-index').addEventListener(
      'change',
      guarded(() => sortBy($('sort-index').value, state.browse.order)),
    );
    $('sort-order').addEventListener(
      'click',
      guarded(() => sortBy(state.browse.sortIndex, state.browse.order === 'desc' ? 'asc' : 'desc')),
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
