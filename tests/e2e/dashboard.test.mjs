// dashboard.test.mjs — the server side of /dashboard (api.md §8) over plain
// HTTP: the embedded static files and their hardening headers; the admin key
// guarding every data endpoint; `_system:tables` and `_system:browse` (row
// counts, newest-first pages, the _id filter, refusals); the function list of
// GET /dashboard/api/functions (public and internal, never `_system:`); and
// the recent log lines of GET /dashboard/api/logs, which carry the calls and
// never a secret. The page itself is driven in tests/browser/.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { checkAfterEach, startDojo } from './lib/dojo.mjs';
import { newSubject, startIssuer } from './lib/issuer.mjs';

const APP_TABLES = ['users', 'workflows', 'runs', 'transactions'];

let issuer;
let dojo;

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer });
});
checkAfterEach(() => dojo);
after(() => issuer?.close());

const adminHeaders = (key = dojo.adminKey) => ({ Authorization: `Convex ${key}` });
const bearer = (token) => ({ Authorization: `Bearer ${token}` });
const firstPage = (numItems) => ({ numItems, cursor: null });

/** A signed-in user with their user document: {token, tokenIdentifier, user}. */
async function newUser(email = `${newSubject()}@example.com`) {
  const sub = newSubject();
  const token = await issuer.token({ sub, email, name: 'Dash User' }, { expiresIn: 600 });
  const res = await dojo.http('POST', '/api/mutation', {
    body: { path: 'users:getOrCreate', args: {} },
    headers: bearer(token),
  });
  assert.equal(res.json?.status, 'success', res.text);
  return { token, tokenIdentifier: `${issuer.url}|${sub}`, user: res.json.value };
}

async function tableCounts() {
  const tables = await dojo.adminCall('_system:tables', {});
  return Object.fromEntries(tables.map((t) => [t.name, t.count]));
}

/** Every page of one table through _system:browse. */
async function browseAll(table, numItems) {
  const pages = [];
  let cursor = null;
  for (let i = 0; i < 100; i++) {
    const page = await dojo.adminCall('_system:browse', { table, paginationOpts: { numItems, cursor } });
    pages.push(page);
    if (page.isDone) return pages;
    cursor = page.continueCursor;
  }
  throw new Error(`${table} did not end within 100 pages`);
}

async function logsAfter(after) {
  const res = await dojo.http('GET', `/dashboard/api/logs?after=${after}`, { headers: adminHeaders() });
  assert.equal(res.status, 200, res.text);
  return res.json;
}

describe('static files', () => {
  const files = [
    ['/dashboard', /^text\/html; charset=utf-8$/, /<script src="\/dashboard\/app.js" defer><\/script>/],
    ['/dashboard/', /^text\/html; charset=utf-8$/, /<title>dojo dashboard<\/title>/],
    ['/dashboard/app.js', /^text\/javascript; charset=utf-8$/, /\/api\/function/],
    ['/dashboard/style.css', /^text\/css; charset=utf-8$/, /\.tabs/],
    ['/dashboard/favicon.svg', /^image\/svg\+xml$/, /<svg/],
  ];
  for (const [path, type, content] of files) {
    test(`GET ${path} serves the embedded file with its type and hardening headers`, async () => {
      const res = await dojo.http('GET', path);
      assert.equal(res.status, 200, res.text);
      assert.match(res.headers.get('content-type'), type);
      assert.match(res.text, content);
      assert.equal(res.headers.get('cache-control'), 'no-cache');
      const csp = res.headers.get('content-security-policy');
      assert.match(csp, /(^|; )default-src 'self'(;|$)/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(res.headers.get('x-frame-options'), 'DENY');
      assert.match(res.headers.get('x-request-id'), /^[0-9a-f]{16}$/);
    });
  }

  test('the files load without the admin key and hold no key, data or inline code', async () => {
    const html = (await dojo.http('GET', '/dashboard')).text;
    assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)[^>]*>/, 'no inline <script>');
    assert.doesNotMatch(html, /\sstyle=|<style/, 'no inline style (the CSP forbids it)');
    assert.doesNotMatch(html, /\son[a-z]+=/, 'no inline event handler');
    for (const path of ['/dashboard', '/dashboard/app.js', '/dashboard/style.css']) {
      const res = await dojo.http('GET', path);
      assert.ok(!res.text.includes(dojo.adminKey), `${path} does not carry the admin key`);
      assert.doesNotMatch(res.text, /https?:\/\/(?!issuer\.example)[a-z]/i, `${path} loads nothing from elsewhere`);
    }
  });

  test('unknown dashboard files are 404 and other methods 405, as JSON', async () => {
    for (const path of ['/dashboard/missing.js', '/dashboard/a/app.js', '/dashboard/../dashboard/app.js']) {
      const res = await dojo.http('GET', path);
      if (res.status === 200) continue; // a client may normalise "..": then it is app.js itself
      assert.equal(res.status, 404, `${path}: ${res.text}`);
      assert.equal(res.json.code, 'NotFound');
    }
    const post = await dojo.http('POST', '/dashboard', { body: {} });
    assert.equal(post.status, 405);
    assert.equal(post.json.code, 'MethodNotAllowed');
    // "/dashboardx" is not the dashboard.
    assert.equal((await dojo.http('GET', '/dashboardx')).json.code, 'NotFound');
  });
});

describe('the admin key', () => {
  const endpoints = ['/dashboard/api/functions', '/dashboard/api/logs', '/dashboard/api/logs?after=0'];

  test('every data endpoint refuses a request without the key with 401 BadAdminKey', async () => {
    for (const path of endpoints) {
      const res = await dojo.http('GET', path);
      assert.equal(res.status, 401, `${path}: ${res.text}`);
      assert.equal(res.json.code, 'BadAdminKey');
      assert.match(res.json.message, /admin key/);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.equal(res.headers.get('access-control-allow-origin'), null);
    }
  });

  test('every data endpoint refuses a wrong key, a user token and a malformed header', async () => {
    const { token } = await newUser();
    const refusals = [
      adminHeaders('not-the-key'),
      adminHeaders(`${dojo.adminKey}x`),
      adminHeaders(dojo.adminKey.slice(0, -1)),
      adminHeaders(''),
      bearer(token),
      { Authorization: dojo.adminKey },
    ];
    for (const path of endpoints) {
      for (const headers of refusals) {
        const res = await dojo.http('GET', path, { headers });
        assert.equal(res.status, 401, `${path} with ${JSON.stringify(headers).slice(0, 40)}: ${res.text}`);
        assert.equal(res.json.code, 'BadAdminKey');
        assert.ok(!res.text.includes(dojo.adminKey), 'the answer never echoes the key');
      }
    }
  });

  test('the dashboard functions refuse a wrong admin key with 401 BadAdminKey', async () => {
    for (const path of ['_system:tables', '_system:browse']) {
      const res = await dojo.http('POST', '/api/function', {
        headers: adminHeaders('wrong'),
        body: { path, args: {}, format: 'json' },
      });
      assert.equal(res.status, 401, res.text);
      assert.equal(res.json.code, 'BadAdminKey');
    }
  });

  test('without the key the dashboard functions do not exist; a user token cannot reach them', async () => {
    const { token } = await newUser();
    const args = { table: 'users', paginationOpts: firstPage(5) };
    for (const headers of [{}, bearer(token)]) {
      for (const path of ['_system:tables', '_system:browse']) {
        const res = await dojo.http('POST', '/api/function', {
          headers,
          body: { path, args: path === '_system:tables' ? {} : args, format: 'json' },
        });
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json.status, 'error');
        assert.equal(res.json.errorData?.code, 'INVALID_ARGUMENT');
        assert.equal(res.json.errorMessage, `Could not find public function for '${path}'.`);
        assert.equal(res.json.value, undefined, 'no rows leak');
      }
    }
  });
});

describe('_system:tables and _system:browse', () => {
  test('_system:tables lists the four app tables, no system table, with counts that follow writes', async () => {
    const before = await tableCounts();
    assert.deepEqual(Object.keys(before), APP_TABLES);
    const { user } = await newUser();
    await dojo.adminCall('admin:grantCredits', { userId: user._id, amount: 5, note: 'dashboard test' });
    const afterCounts = await tableCounts();
    assert.equal(afterCounts.users, before.users + 1);
    assert.equal(afterCounts.transactions, before.transactions + 1);
    assert.equal(afterCounts.workflows, before.workflows);
    assert.equal(afterCounts.runs, before.runs);
  });

  test('_system:browse pages through a table newest first, every document once', async () => {
    for (let i = 0; i < 5; i++) await newUser();
    const { users } = await tableCounts();
    assert.ok(users >= 5);
    const pages = await browseAll('users', 2);
    assert.equal(pages.length, Math.ceil(users / 2), 'pages of 2, the last one marked done');
    for (const page of pages.slice(0, -1)) assert.equal(page.page.length, 2);
    const docs = pages.flatMap((p) => p.page);
    assert.equal(docs.length, users);
    assert.equal(new Set(docs.map((d) => d._id)).size, users, 'no document twice');
    for (let i = 1; i < docs.length; i++) {
      assert.ok(docs[i - 1]._creationTime >= docs[i]._creationTime, 'newest first');
    }
    // The first page is the newest users, whole documents.
    const one = await dojo.adminCall('_system:browse', { table: 'users', paginationOpts: firstPage(1) });
    assert.deepEqual(one.page[0], docs[0]);
    assert.equal(typeof one.page[0].tokenIdentifier, 'string');
  });

  test('_system:browse with id gives that one document, or an empty page', async () => {
    const { user } = await newUser();
    const found = await dojo.adminCall('_system:browse', {
      table: 'users',
      paginationOpts: firstPage(10),
      id: user._id,
    });
    assert.deepEqual(found.page, [user]);
    assert.equal(found.isDone, true);
    for (const [table, id] of [
      ['transactions', user._id], // an id of another table
      ['users', 'not-an-id'],
    ]) {
      const none = await dojo.adminCall('_system:browse', { table, paginationOpts: firstPage(10), id });
      assert.deepEqual(none.page, [], `${table} ${id}`);
      assert.equal(none.isDone, true);
    }
  });

  test('_system:browse refuses unknown and system tables with INVALID_ARGUMENT naming `table`', async () => {
    for (const table of ['nope', '_env', '_session_requests', 'Users']) {
      const body = await dojo.adminCallRaw('_system:browse', { table, paginationOpts: firstPage(5) });
      assert.equal(body.status, 'error', table);
      assert.equal(body.errorData.code, 'INVALID_ARGUMENT');
      assert.match(body.errorMessage, /^Invalid argument `table`: /);
      assert.match(body.errorMessage, /users, workflows, runs, transactions/);
    }
    const bad = await dojo.adminCallRaw('_system:browse', { table: 'users', paginationOpts: firstPage(0) });
    assert.equal(bad.errorData.code, 'INVALID_ARGUMENT');
    assert.match(bad.errorMessage, /`paginationOpts.numItems`/);
  });
});

describe('GET /dashboard/api/functions', () => {
  test('lists every public and internal function with kind, doc and argument description', async () => {
    const res = await dojo.http('GET', '/dashboard/api/functions', { headers: adminHeaders() });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const fns = res.json.functions;
    const byPath = new Map(fns.map((f) => [f.path, f]));
    for (const path of ['users:getOrCreate', 'users:me', 'workflows:create', 'runs:create', 'runs:claim', 'transactions:list', 'admin:grantCredits', 'admin:verifyLedger']) {
      assert.ok(byPath.has(path), `${path} is listed`);
    }
    assert.equal(fns.filter((f) => f.path.startsWith('_system:')).length, 0, 'no system function');
    assert.deepEqual(
      { kind: byPath.get('users:getOrCreate').kind, visibility: byPath.get('users:getOrCreate').visibility },
      { kind: 'mutation', visibility: 'public' },
    );
    const grant = byPath.get('admin:grantCredits');
    assert.equal(grant.kind, 'mutation');
    assert.equal(grant.visibility, 'internal');
    assert.match(grant.doc, /credits/i);
    assert.equal(grant.args.type, 'object');
    const fields = Object.fromEntries(grant.args.fields.map((f) => [f.name, f]));
    assert.deepEqual(Object.keys(fields).sort(), ['amount', 'email', 'note', 'tokenIdentifier', 'userId']);
    assert.equal(fields.amount.optional, false);
    assert.equal(fields.amount.type.type, 'integer');
    assert.equal(fields.amount.type.min, 1);
    assert.deepEqual(fields.userId.type, { type: 'id', table: 'users' });
    assert.equal(fields.userId.optional, true);
    const create = byPath.get('workflows:create').args.fields.find((f) => f.name === 'title');
    assert.deepEqual(create.type, { type: 'string', minLength: 1, maxLength: 200 });
    assert.equal(byPath.get('admin:verifyLedger').kind, 'query');
  });
});

describe('GET /dashboard/api/logs', () => {
  test('returns the recent lines, with the calls just made, in sequence', async () => {
    const start = await logsAfter(0);
    assert.ok(Array.isArray(start.lines) && start.lines.length > 0);
    assert.ok(start.lines.some((l) => /info +listening on http:/.test(l.text)), 'the start is there');
    for (let i = 1; i < start.lines.length; i++) {
      assert.equal(start.lines[i].seq, start.lines[i - 1].seq + 1);
    }
    assert.equal(start.next, start.lines.at(-1).seq);
    await dojo.adminCall('admin:verifyLedger', {});
    const newer = await logsAfter(start.next);
    assert.ok(newer.lines.length >= 1);
    assert.ok(newer.lines.every((l) => l.seq > start.next), 'only lines after `after`');
    assert.ok(
      newer.lines.some((l) => /^\S+Z info +query admin:verifyLedger by admin: ok in [\d.]+ ms \[[0-9a-f]+\]$/.test(l.text)),
      JSON.stringify(newer.lines),
    );
    const none = await logsAfter(newer.next);
    assert.deepEqual(none.lines.filter((l) => /admin:verifyLedger/.test(l.text)), []);
  });

  test('refuses an `after` that is not a number', async () => {
    const res = await dojo.http('GET', '/dashboard/api/logs?after=abc', { headers: adminHeaders() });
    assert.equal(res.status, 400);
    assert.equal(res.json.code, 'BadRequest');
  });

  test('never returns the admin key or a token', async () => {
    const { token } = await newUser();
    // A refused token and a wrong admin key are logged as refusals; a good
    // token's call as its identity. None of them may show the secret.
    const now = Math.floor(Date.now() / 1000);
    const expired = await issuer.token({ sub: newSubject() }, { iat: now - 600, exp: now - 300 });
    await dojo.http('POST', '/api/query', { body: { path: 'users:me', args: {} }, headers: bearer(expired) });
    await dojo.http('POST', '/api/query', { body: { path: 'users:me', args: {} }, headers: bearer(token) });
    await dojo.http('POST', '/api/function', {
      body: { path: 'admin:verifyLedger', args: {} },
      headers: adminHeaders(`${dojo.adminKey}-wrong`),
    });
    const res = await dojo.http('GET', '/dashboard/api/logs?after=0', { headers: adminHeaders() });
    assert.ok(res.json.lines.some((l) => /token refused/.test(l.text)), 'the refusal is logged');
    assert.ok(res.json.lines.some((l) => /query users:me by http:\/\/127\.0\.0\.1:\d+\|user_/.test(l.text)));
    for (const secret of [dojo.adminKey, token, expired, token.split('.')[1], expired.split('.')[1]]) {
      assert.ok(!res.text.includes(secret), `the logs carry no secret (${secret.slice(0, 12)}…)`);
    }
    assert.doesNotMatch(res.text, /eyJ[\w-]{8,}\.[\w-]{8,}\./, 'nothing shaped like a JWT');
  });

  test('a secret that reaches a log line anyway is masked', async () => {
    // The identity an admin acts as is logged by its tokenIdentifier: make
    // that the admin key, then a token.
    const { token } = await newUser();
    const start = (await logsAfter(0)).next;
    for (const tokenIdentifier of [`http://x|${dojo.adminKey}`, `http://x|${token}`]) {
      const identity = Buffer.from(JSON.stringify({ tokenIdentifier })).toString('base64');
      const res = await dojo.http('POST', '/api/function', {
        body: { path: 'users:me', args: {}, format: 'json' },
        headers: adminHeaders(`${dojo.adminKey}:${identity}`),
      });
      assert.equal(res.json?.status, 'success', res.text);
    }
    const res = await dojo.http('GET', `/dashboard/api/logs?after=${start}`, { headers: adminHeaders() });
    const texts = res.json.lines.map((l) => l.text);
    assert.ok(texts.some((t) => t.includes('by http://x|[admin key]:')), texts.join('\n'));
    assert.ok(texts.some((t) => t.includes('by http://x|[token]:')), texts.join('\n'));
    assert.ok(!res.text.includes(dojo.adminKey));
    assert.ok(!res.text.includes(token.split('.')[1]));
  });
});
