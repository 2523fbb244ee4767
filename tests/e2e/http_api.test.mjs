// http_api.test.mjs — the HTTP API of convex-protocol.md §1 and the meta
// routes of api.md §8, spoken to over plain HTTP the way curl users and
// ConvexHttpClient do: function endpoints, argument shapes, formats, the 4xx
// answers to requests that are not function calls (and that the server keeps
// serving after them), CORS, request ids, /version, /health, /metrics,
// keep-alive, a pipelining client that never reads, and unknown routes.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { checkAfterEach, startDojo } from './lib/dojo.mjs';
import { startIssuer } from './lib/issuer.mjs';

let issuer;
let dojo;

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer });
});
checkAfterEach(() => dojo);
after(() => issuer?.close());

const post = (path, body, headers = {}) => dojo.http('POST', path, { body, headers });
const bearer = (token) => ({ Authorization: `Bearer ${token}` });

async function newUserToken() {
  const token = await issuer.token({ email: `u${Date.now()}@example.com`, name: 'Test User' });
  const res = await post('/api/mutation', { path: 'users:getOrCreate', args: {} }, bearer(token));
  assert.equal(res.json.status, 'success', res.text);
  return token;
}

/** A following query succeeds: the server survived what came before. */
async function assertStillServing() {
  const res = await post('/api/query', { path: 'users:me', args: {} });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { status: 'success', value: null });
}

function assertRequestError(res, status, code) {
  assert.equal(res.status, status, res.text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(typeof res.json?.code, 'string', `a JSON {code, message} body, got ${res.text}`);
  assert.equal(typeof res.json.message, 'string');
  assert.ok(res.json.message.length > 0);
  if (code) assert.equal(res.json.code, code);
}

// --- function endpoints -------------------------------------------------------------

test('POST /api/query runs a query', async () => {
  const res = await post('/api/query', { path: 'users:me', args: {} });
  assert.equal(res.status, 200);
  assert.deepEqual(res.json, { status: 'success', value: null });
});

test('POST /api/mutation runs a mutation with the bearer identity', async () => {
  const token = await issuer.token({ sub: 'user_http_mutation', email: 'm@example.com' });
  const res = await post('/api/mutation', { path: 'users:getOrCreate', args: {} }, bearer(token));
  assert.equal(res.status, 200);
  assert.equal(res.json.status, 'success', res.text);
  assert.equal(res.json.value.tokenIdentifier, `${issuer.url}|user_http_mutation`);
  assert.equal(res.json.value.email, 'm@example.com');
});

test('POST /api/action answers a function error: no actions are registered', async () => {
  for (const path of ['users:me', 'jobs:generate']) {
    const res = await post('/api/action', { path, args: {} });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.status, 'error', res.text);
    assert.equal(res.json.errorData.code, 'INVALID_ARGUMENT');
  }
});

test('POST /api/function runs a query and a mutation by path', async () => {
  const token = await issuer.token({ email: 'f@example.com' });
  const created = await post('/api/function', { path: 'users:getOrCreate', args: {} }, bearer(token));
  assert.equal(created.json.status, 'success', created.text);
  const me = await post('/api/function', { path: 'users:me', args: {} }, bearer(token));
  assert.equal(me.json.status, 'success', me.text);
  assert.equal(me.json.value._id, created.json.value._id);
});

test('POST /api/run/users/me runs users:me', async () => {
  const token = await newUserToken();
  const anonymous = await post('/api/run/users/me', { args: {} });
  assert.equal(anonymous.status, 200, anonymous.text);
  assert.deepEqual(anonymous.json, { status: 'success', value: null });
  const signedIn = await post('/api/run/users/me', { args: {} }, bearer(token));
  assert.equal(signedIn.json.status, 'success', signedIn.text);
  assert.equal(signedIn.json.value.name, 'Test User');
});

test('/api/run strips a .js module suffix, and refuses a malformed path with 400', async () => {
  const res = await post('/api/run/users.js/me', { args: {} });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { status: 'success', value: null });
  assertRequestError(await post('/api/run/users/me%3Aextra', { args: {} }), 400, 'BadConvexFunctionIdentifier');
});

test('HEAD /api/query answers like GET, without a body', async () => {
  const res = await dojo.http('HEAD', `/api/query?path=users:me&args=${encodeURIComponent('{}')}`);
  assert.equal(res.status, 200);
  assert.equal(res.text, '');
  const put = await dojo.http('PUT', '/api/query', { body: { path: 'users:me', args: {} } });
  assertRequestError(put, 405, 'MethodNotAllowed');
  assert.match(put.json.message, /GET or POST/);
});

test('a refused token is a 401 even when the arguments are malformed too', async () => {
  for (const args of [null, [{}, {}], 'x']) {
    const res = await post('/api/query', { path: 'users:me', args }, bearer('not-a-jwt'));
    assertRequestError(res, 401);
  }
  // Without a token, the malformed arguments are the function error.
  const anonymous = await post('/api/query', { path: 'users:me', args: null });
  assert.equal(anonymous.status, 200);
  assert.equal(anonymous.json.status, 'error');
  assert.equal(anonymous.json.errorData?.code ?? 'INVALID_ARGUMENT', 'INVALID_ARGUMENT');
});

test('GET /instance_name and GET / answer 200 plain text', async () => {
  const name = await dojo.http('GET', '/instance_name');
  assert.equal(name.status, 200);
  assert.ok(name.text.length > 0);
  const root = await dojo.http('GET', '/');
  assert.equal(root.status, 200);
  assert.match(root.text, /^This Convex deployment is running/);
});

test('/api/query_batch answers every query, in order, each with its own outcome', async () => {
  const token = await newUserToken();
  const res = await post(
    '/api/query_batch',
    {
      queries: [
        { path: 'users:me', args: {}, format: 'json' },
        { path: 'workflows:list', args: {} },
        { path: 'users:nope', args: {} },
        { path: 'users:getOrCreate', args: {} },
        { path: 'workflows:get', args: { id: 'not an id' } },
      ],
    },
    bearer(token),
  );
  assert.equal(res.status, 200, res.text);
  const [me, list, unknown, mutation, badArgs] = res.json.results;
  assert.equal(me.status, 'success');
  assert.equal(me.value.name, 'Test User');
  assert.deepEqual(list, { status: 'success', value: [] });
  assert.equal(unknown.status, 'error');
  assert.equal(unknown.errorMessage, "Could not find public function for 'users:nope'.");
  assert.match(mutation.errorMessage, /as Query, but it is defined as Mutation/);
  assert.equal(badArgs.status, 'error');
  assert.equal(res.json.results.length, 5);
  assertRequestError(await post('/api/query_batch', { queries: 'x' }), 400, 'BadJsonBody');
  // A refused token refuses the whole batch.
  assertRequestError(await post('/api/query_batch', { queries: [] }, bearer('nope')), 401);
});

test('/api/query_ts and /api/query_at_ts: an answer as of a timestamp, while its data is unchanged', async () => {
  const token = await newUserToken();
  const tsRes = await post('/api/query_ts', {});
  assert.equal(tsRes.status, 200, tsRes.text);
  assert.equal(Buffer.from(tsRes.json.ts, 'base64').length, 8);
  const ask = () => post('/api/query_at_ts', { path: 'users:me', args: {}, format: 'json', ts: tsRes.json.ts }, bearer(token));
  const first = await ask();
  assert.equal(first.status, 200, first.text);
  assert.equal(first.json.value.name, 'Test User');
  // Another user's write does not touch what this query read.
  await newUserToken();
  const again = await ask();
  assert.equal(again.status, 200, again.text);
  assert.deepEqual(again.json, first.json);
  // A write to this user's own row does: that timestamp is no longer servable.
  const grant = await post('/api/mutation', {
    path: 'admin:grantCredits',
    args: { tokenIdentifier: first.json.value.tokenIdentifier, amount: 3 },
  }, { Authorization: `Convex ${dojo.adminKey}` });
  assert.equal(grant.json.status, 'success', grant.text);
  assertRequestError(await ask(), 400, 'QueryTimestampUnavailable');
  assertRequestError(await post('/api/query_at_ts', { path: 'users:me', args: {}, ts: 'nope' }), 400, 'InvalidTimestamp');
});

test('a string with U+0000 in the arguments is a function error naming the field', async () => {
  const token = await newUserToken();
  const res = await post('/api/mutation', { path: 'workflows:create', args: { title: 'a\u0000b' } }, bearer(token));
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.status, 'error');
  assert.match(res.json.errorMessage, /Invalid argument `title`: strings may not contain the character U\+0000/);
  const list = await post('/api/query', { path: 'workflows:list', args: {} }, bearer(token));
  assert.deepEqual(list.json.value, [], 'nothing was written');
});

test('GET /api/query?path=…&args=… runs a query', async () => {
  const token = await newUserToken();
  const qs = new URLSearchParams({ path: 'users:me', args: JSON.stringify({}), format: 'json' });
  const res = await dojo.http('GET', `/api/query?${qs}`, { headers: bearer(token) });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.status, 'success', res.text);
  assert.equal(res.json.value.name, 'Test User');
});

test('args are accepted as an object and as a one-element array', async () => {
  const token = await newUserToken();
  const asObject = await post('/api/query', { path: 'users:me', args: {} }, bearer(token));
  const asArray = await post('/api/query', { path: 'users:me', args: [{}] }, bearer(token));
  assert.equal(asObject.json.status, 'success', asObject.text);
  assert.deepEqual(asArray.json, asObject.json);
});

test('format json and convex_encoded_json are accepted', async () => {
  for (const format of ['json', 'convex_encoded_json']) {
    const res = await post('/api/query', { path: 'users:me', args: {}, format });
    assert.equal(res.status, 200, `${format}: ${res.text}`);
    assert.deepEqual(res.json, { status: 'success', value: null });
  }
});

test('an unknown format is refused with 400 BadFormat', async () => {
  const res = await post('/api/query', { path: 'users:me', args: {}, format: 'yaml' });
  assertRequestError(res, 400, 'BadFormat');
  await assertStillServing();
});

test('an unknown function is a function error with code INVALID_ARGUMENT', async () => {
  const res = await post('/api/query', { path: 'users:nope', args: {} });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.status, 'error');
  assert.equal(res.json.errorData.code, 'INVALID_ARGUMENT');
  assert.match(res.json.errorMessage, /users:nope/);
});

test('calling a mutation through /api/query is a function error', async () => {
  const token = await issuer.token({ sub: 'user_wrong_endpoint' });
  const res = await post('/api/query', { path: 'users:getOrCreate', args: {} }, bearer(token));
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.status, 'error');
  assert.equal(res.json.errorData.code, 'INVALID_ARGUMENT');
  const me = await post('/api/query', { path: 'users:me', args: {} }, bearer(token));
  assert.equal(me.json.value, null, 'the mutation did not run');
});

// --- requests that are not function calls -----------------------------------------

test('a malformed JSON body gets 400 with a JSON {code, message}', async () => {
  const res = await post('/api/query', '{"path": "users:me", "args": {', {
    'Content-Type': 'application/json',
  });
  assertRequestError(res, 400);
  await assertStillServing();
});

test('a wrong Content-Type gets a 4xx with a JSON {code, message}', async () => {
  const res = await post('/api/query', JSON.stringify({ path: 'users:me', args: {} }), {
    'Content-Type': 'text/plain',
  });
  assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
  assertRequestError(res, res.status);
  await assertStillServing();
});

/** POSTs bytes with node:http, so a server that answers before reading the
 *  whole body (413) still gets its answer read. */
function postLarge(path, bytes) {
  return new Promise((resolve, reject) => {
    const url = new URL(path, dojo.url);
    const req = http.request(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Length': bytes.length },
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let json;
        try {
          json = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode, headers: new Headers(res.headers), text, json });
      });
    });
    req.on('error', (e) => {
      // The server may close its side after answering; only an error before
      // any answer is a failure.
      if (!req.res) reject(e);
    });
    req.end(bytes);
  });
}

test('a body over 8 MiB gets 413 with a JSON {code, message}', async () => {
  const filler = 'x'.repeat(8 * 1024 * 1024 + 1024);
  const body = Buffer.from(JSON.stringify({ path: 'users:me', args: { filler } }));
  const res = await postLarge('/api/query', body);
  assertRequestError(res, 413);
  await assertStillServing();
});

test('a document over 1 MiB inside a smaller body is INVALID_ARGUMENT and writes nothing', async () => {
  const token = await newUserToken();
  const list = () => post('/api/query', { path: 'workflows:list', args: {} }, bearer(token));
  const small = await post(
    '/api/mutation',
    { path: 'workflows:create', args: { title: 'small', nodes: [{ id: 'n1' }] } },
    bearer(token),
  );
  assert.equal(small.json.status, 'success', small.text);
  const before = await list();
  assert.equal(before.json.value.length, 1);

  const blob = 'n'.repeat(300 * 1024);
  const nodes = [0, 1, 2, 3].map((i) => ({ id: `n${i}`, type: 'prompt', data: { text: blob } }));
  const body = { path: 'workflows:create', args: { title: 'huge', nodes, edges: [] } };
  assert.ok(JSON.stringify(body).length > 1024 * 1024 && JSON.stringify(body).length < 8 * 1024 * 1024);
  const res = await post('/api/mutation', body, bearer(token));
  assert.equal(res.status, 200, res.text.slice(0, 300));
  assert.equal(res.json.status, 'error', res.text.slice(0, 300));
  assert.equal(res.json.errorData.code, 'INVALID_ARGUMENT');

  const after = await list();
  assert.deepEqual(after.json, before.json);
  await assertStillServing();
});

// --- CORS, request ids, meta routes ------------------------------------------------

test('a CORS preflight mirrors the Origin and the requested headers', async () => {
  const origin = 'https://app.karate.example';
  const res = await dojo.http('OPTIONS', '/api/query', {
    headers: {
      Origin: origin,
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'content-type,authorization,convex-client',
    },
  });
  assert.ok(res.status === 200 || res.status === 204, `status ${res.status}`);
  assert.equal(res.headers.get('access-control-allow-origin'), origin);
  assert.equal(res.headers.get('access-control-allow-headers'), 'content-type,authorization,convex-client');
  assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
  const methods = (res.headers.get('access-control-allow-methods') ?? '').split(/,\s*/);
  for (const m of ['GET', 'POST', 'OPTIONS', 'PATCH', 'DELETE', 'PUT']) assert.ok(methods.includes(m), m);
  assert.equal(res.headers.get('access-control-max-age'), '86400');
});

test('a normal response mirrors the Origin and allows credentials', async () => {
  const origin = 'http://localhost:5173';
  const res = await post('/api/query', { path: 'users:me', args: {} }, { Origin: origin });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('access-control-allow-origin'), origin);
  assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
});

test('every response carries an X-Request-Id', async () => {
  const responses = [
    await post('/api/query', { path: 'users:me', args: {} }),
    await post('/api/query', { path: 'users:nope', args: {} }),
    await post('/api/query', 'not json', { 'Content-Type': 'application/json' }),
    await dojo.http('GET', '/health'),
    await dojo.http('GET', '/version'),
    await dojo.http('GET', '/no/such/route'),
    await dojo.http('OPTIONS', '/api/query', { headers: { Origin: 'http://x.example' } }),
  ];
  const ids = responses.map((r) => r.headers.get('x-request-id'));
  for (const id of ids) assert.match(id ?? '', /^[0-9a-zA-Z-]{6,}$/);
  assert.equal(new Set(ids).size, ids.length, 'request ids are distinct');
});

test('GET /version answers 200 with the version as text', async () => {
  const res = await dojo.http('GET', '/version');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  assert.match(res.text.trim(), /^\d+\.\d+\.\d+/);
});

test('GET /health answers 200 {"status":"ok"} while the store answers', async () => {
  const res = await dojo.http('GET', '/health');
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.status, 'ok');
});

test('GET /metrics counts requests by route and status and has a latency histogram', async () => {
  await post('/api/query', { path: 'users:me', args: {} });
  await dojo.http('GET', '/no/such/route');
  const res = await dojo.http('GET', '/metrics');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const count = (route, status) => {
    const re = new RegExp(
      `^dojo_http_requests_total\\{(?=[^}]*route="${route.replace(/\//g, '\\/')}")(?=[^}]*status="${status}")[^}]*\\} (\\d+)`,
      'm',
    );
    const m = res.text.match(re);
    return m ? Number(m[1]) : 0;
  };
  assert.ok(count('/api/query', 200) >= 1, res.text);
  assert.ok(count('other', 404) >= 1, res.text);
  assert.match(res.text, /^# TYPE dojo_\S+ histogram$/m);
  assert.match(res.text, /^dojo_\S+_bucket\{(?=[^}]*route="\/api\/query")(?=[^}]*le="\+Inf")[^}]*\} [1-9]\d*$/m);
  assert.match(res.text, /^dojo_\S+_count\{[^}]*route="\/api\/query"[^}]*\} [1-9]\d*$/m);
});

test('several requests share one keep-alive connection', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set();
  const reused = [];
  try {
    for (let i = 0; i < 5; i++) {
      const status = await new Promise((resolve, reject) => {
        const body = JSON.stringify({ path: 'users:me', args: {} });
        const req = http.request(new URL('/api/query', dojo.url), {
          method: 'POST',
          agent,
          headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
        });
        req.on('socket', (s) => sockets.add(s));
        req.on('response', (res) => {
          reused.push(req.reusedSocket);
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        });
        req.on('error', reject);
        req.end(body);
      });
      assert.equal(status, 200);
    }
  } finally {
    agent.destroy();
  }
  assert.equal(sockets.size, 1, 'one connection carried every request');
  assert.deepEqual(reused, [false, true, true, true, true]);
});

/** Resident memory of a process in bytes (VmRSS of /proc/<pid>/status). */
function rssBytes(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB$/m);
  assert.ok(m, `no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** GET on a connection of its own, answered within ms (a liveness bound). */
async function getWithin(urlPath, ms) {
  const res = await fetch(`${dojo.url}${urlPath}`, { signal: AbortSignal.timeout(ms) });
  return { status: res.status, text: await res.text() };
}

/** GET /metrics served so far, from another connection (which adds one). */
async function metricsServed() {
  const res = await getWithin('/metrics', 10_000);
  assert.equal(res.status, 200);
  const m = res.text.match(/^dojo_http_requests_total\{route="\/metrics",status="200"\} (\d+)$/m);
  return m ? Number(m[1]) : 0;
}

test('a client that pipelines requests but never reads is paused, not buffered without bound', async () => {
  // 40,000 × GET /metrics asks for 80+ MB of responses. The server must stop
  // reading that connection once its queued responses pass the write bound
  // (4 MiB) instead of answering everything into memory.
  const N = 40_000;
  const pid = dojo.proc.pid;
  const served0 = await metricsServed();
  const rss0 = rssBytes(pid);
  const { hostname, port } = new URL(dojo.url);
  const sock = net.connect({ host: hostname, port: Number(port) });
  sock.pause(); // reads nothing (beyond Node's small internal buffer)
  sock.on('error', () => {});
  try {
    await new Promise((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    sock.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(N));

    // Wait until the server stops answering that connection (liveness bound:
    // 60 s). Each sample is itself one more /metrics request.
    let polls = 1;
    let last = -1;
    let steady = 0;
    const deadline = Date.now() + 60_000;
    while (steady < 3) {
      assert.ok(Date.now() < deadline, `the server kept answering the unread connection: ${last} of ${N}`);
      await sleep(300);
      const served = (await metricsServed()) - served0 - polls++;
      steady = Math.abs(served - last) <= 1 ? steady + 1 : 0;
      last = served;
    }
    const grownBytes = rssBytes(pid) - rss0;
    assert.ok(last > 0, 'the connection was served at first');
    assert.ok(last < N / 2, `${last} of ${N} unread requests were answered`);
    assert.ok(
      grownBytes < 48 * 1024 * 1024,
      `the server grew by ${(grownBytes / 1048576).toFixed(1)} MiB for ${last} unread responses`,
    );

    // Meanwhile other clients are served promptly.
    const version = await getWithin('/version', 5_000);
    assert.equal(version.status, 200);
    await assertStillServing();
  } finally {
    sock.destroy();
  }
});

test('an unknown route gets 404 with a JSON {code, message}', async () => {
  const res = await dojo.http('GET', '/no/such/route');
  assertRequestError(res, 404);
});
