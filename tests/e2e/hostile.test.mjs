// hostile.test.mjs — input a hostile client can send never crashes or
// wedges the server: every field of every sync message and of every HTTP
// body, replaced by a value of the wrong type (or removed), is answered with
// the protocol's own error — a FatalError naming the field on the WebSocket,
// a 4xx {code, message} or a function error over HTTP — and the server goes
// on serving everyone else.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';

import { checkAfterEach, startDojo } from './lib/dojo.mjs';
import { startIssuer } from './lib/issuer.mjs';
import { RawSyncClient } from './lib/sync_raw.mjs';

let issuer;
let dojo;
checkAfterEach(() => dojo);

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer });
});
after(async () => {
  await issuer?.close();
});

const deepArray = (depth) => JSON.parse('['.repeat(depth) + ']'.repeat(depth));

/** Values of every JSON type, and the shapes that broke parsers before. */
const CONFUSED = [
  5,
  -1,
  0.5,
  true,
  null,
  [1, 2],
  { a: 1 },
  '',
  'x\u0000y',
  'x'.repeat(70_000),
  deepArray(2000),
  1e300,
  -9007199254740993,
];

/** Every client message of convex-protocol §2.3, valid as written. */
function templates() {
  return {
    Connect: { type: 'Connect', sessionId: randomUUID(), connectionCount: 0, lastCloseReason: 'InitialConnect', clientTs: Date.now() },
    Add: {
      type: 'ModifyQuerySet',
      baseVersion: 0,
      newVersion: 1,
      modifications: [
        {
          type: 'Add',
          queryId: 1,
          udfPath: 'runs:list',
          args: [{ paginationOpts: { numItems: 10, cursor: null } }],
          journal: null,
          componentPath: '',
        },
      ],
    },
    Remove: { type: 'ModifyQuerySet', baseVersion: 0, newVersion: 1, modifications: [{ type: 'Remove', queryId: 1 }] },
    Authenticate: { type: 'Authenticate', tokenType: 'None', baseVersion: 0 },
    AuthenticateAdmin: { type: 'Authenticate', tokenType: 'Admin', value: 'not-the-key', baseVersion: 0, impersonating: { tokenIdentifier: 'x|y' } },
    Mutation: { type: 'Mutation', requestId: 0, udfPath: 'users:getOrCreate', args: [{}], componentPath: '' },
    Action: { type: 'Action', requestId: 0, udfPath: 'users:me', args: [{}] },
    Event: { type: 'Event', eventType: 'ClientConnect', event: {} },
  };
}

/** Paths to every field of a message: ['sessionId'], ['modifications', 0, 'queryId'], … */
function fieldPaths(value, prefix = []) {
  if (Array.isArray(value)) return value.flatMap((v, i) => [[...prefix, i], ...fieldPaths(v, [...prefix, i])]);
  if (value && typeof value === 'object')
    return Object.entries(value).flatMap(([k, v]) => [[...prefix, k], ...fieldPaths(v, [...prefix, k])]);
  return [];
}

function withField(msg, path, replacement) {
  const copy = structuredClone(msg);
  let at = copy;
  for (const key of path.slice(0, -1)) at = at[key];
  const last = path[path.length - 1];
  if (replacement === undefined) {
    if (Array.isArray(at)) at.splice(last, 1);
    else delete at[last];
  } else {
    at[last] = replacement;
  }
  return copy;
}

/** Opens a socket, sends Connect (unless the case is a Connect) and then
 *  msg, and collects what comes back for a moment or until the close. */
async function sendOne(msg, { connect = true, settleMs = 250 } = {}) {
  const ws = new WebSocket(`${dojo.url.replace(/^http/, 'ws')}/api/1.48.0/sync`);
  const got = [];
  let closed = null;
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws.on('message', (d) => got.push(JSON.parse(d.toString())));
  const done = new Promise((resolve) => ws.on('close', (code) => resolve((closed = code))));
  ws.on('error', () => {});
  if (connect) ws.send(JSON.stringify(templates().Connect));
  ws.send(JSON.stringify(msg));
  await Promise.race([done, new Promise((r) => setTimeout(r, settleMs))]);
  ws.terminate();
  return { got, closed };
}

async function serverAlive() {
  const r = await dojo.http('GET', '/health');
  assert.equal(r.status, 200, `the server must still answer /health: ${r.status} ${r.text}`);
  assert.equal(dojo.proc.exited ?? null, null);
}

async function inBatches(items, size, fn) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

describe('the sync protocol', () => {
  test('the reported crash: a non-string componentPath is a FatalError naming it, and the server lives', async () => {
    for (const componentPath of [5, true, [1, 2], { a: 1 }, -1, 0.5, deepArray(2000)]) {
      const msg = templates().Add;
      msg.modifications[0].componentPath = componentPath;
      const { got, closed } = await sendOne(msg, { settleMs: 5000 });
      const fatal = got.find((m) => m.type === 'FatalError');
      assert.ok(fatal, `componentPath ${JSON.stringify(componentPath).slice(0, 40)}: expected a FatalError, got ${JSON.stringify(got)}`);
      assert.match(fatal.error, /modifications\[0\]\.componentPath must be a string or null/);
      assert.notEqual(closed, null, 'the session ends');
    }
    await serverAlive();
    // Everyone else is still served.
    const c = await RawSyncClient.connect(dojo.url);
    c.add(0, 'users:me', {});
    const t = await c.nextTransition();
    assert.equal(t.modifications[0].value, null);
    c.close();
  });

  test('every field of every message, with a value of each wrong type or removed, gets an answer and never a crash', async () => {
    const cases = [];
    for (const [name, msg] of Object.entries(templates())) {
      for (const path of fieldPaths(msg)) {
        if (path[0] === 'type' && path.length === 1) continue; // covered below
        for (const v of [...CONFUSED, undefined]) cases.push({ name, msg: withField(msg, path, v), connect: name !== 'Connect' });
      }
    }
    for (const v of [...CONFUSED, 'Nonsense', undefined]) cases.push({ name: 'type', msg: withField(templates().Event, ['type'], v), connect: true });
    await inBatches(cases, 24, async ({ name, msg, connect }) => {
      const { got } = await sendOne(msg, { connect });
      for (const m of got) {
        if (m.type === 'FatalError') assert.ok(m.error.length > 0, `${name}: a FatalError says why`);
      }
    });
    await serverAlive();
  });

  test('a frame header announcing 2^63-1 bytes closes the socket at once (1009)', async () => {
    const { port } = new URL(dojo.url);
    const sock = net.connect(Number(port), '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write(
      'GET /api/1.48.0/sync HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => (buf = Buffer.concat([buf, d])));
    await new Promise((r) => setTimeout(r, 200));
    assert.match(buf.toString('latin1'), /^HTTP\/1\.1 101/);
    buf = Buffer.alloc(0);
    const header = Buffer.alloc(14);
    header[0] = 0x81; // FIN, text
    header[1] = 0x80 | 127; // masked, 64-bit length
    header.writeBigUInt64BE(2n ** 63n - 1n, 2);
    const started = Date.now();
    const closed = new Promise((r) => sock.on('close', r));
    sock.write(header.subarray(0, 14));
    await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
    assert.ok(Date.now() - started < 4000, 'the socket must not wait for the silence timeout');
    const body = buf.toString('latin1');
    assert.ok(buf.length >= 4 && buf[0] === 0x88, `a close frame comes first: ${JSON.stringify(body)}`);
    assert.equal(buf.readUInt16BE(2), 1009);
    sock.destroy();
    await serverAlive();
  });
});

describe('HTTP', () => {
  test('a function path with U+0000 is refused, never cut at the NUL', async () => {
    const r = await dojo.http('POST', '/api/query', { body: { path: 'users:me\u0000x', args: {} } });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.message, /path must not contain U\+0000/);
  });

  test('query parameters that are not valid percent-encoding are a 400 naming the parameter', async () => {
    const r = await dojo.http('GET', '/api/query?path=users:me&args=%zz%4');
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.code, 'BadQueryString');
    assert.match(r.json.message, /`args` is not valid percent-encoding/);
    const ok = await dojo.http('GET', '/api/query?path=users:me&args=%7B%7D');
    assert.equal(ok.status, 200, ok.text);
  });

  test('every field of every body, of each wrong type or removed, is a 4xx or a function error', async () => {
    const bodies = {
      '/api/query': { path: 'users:me', args: {}, format: 'json' },
      '/api/mutation': { path: 'workflows:create', args: { title: 't' }, format: 'json' },
      '/api/action': { path: 'users:me', args: {} },
      '/api/function': { path: 'users:me', args: {}, format: 'convex_encoded_json' },
      '/api/query_batch': { queries: [{ path: 'users:me', args: {}, format: 'json' }] },
      '/api/query_at_ts': { ts: 'AAAAAAAAAAA=', path: 'users:me', args: {} },
      '/api/run/users/me': { args: {}, format: 'json' },
    };
    const cases = [];
    for (const [route, body] of Object.entries(bodies)) {
      for (const path of fieldPaths(body)) for (const v of [...CONFUSED, undefined]) cases.push({ route, body: withField(body, path, v) });
      for (const whole of CONFUSED) cases.push({ route, body: JSON.stringify(whole) });
    }
    await inBatches(cases, 16, async ({ route, body }) => {
      const r = await dojo.http('POST', route, {
        headers: { 'Content-Type': 'application/json' },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      assert.ok(r.status < 500, `${route} ${JSON.stringify(body).slice(0, 120)}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
      if (r.status >= 400) {
        assert.equal(typeof r.json?.code, 'string', `${route}: a 4xx carries {code, message}: ${r.text.slice(0, 200)}`);
        assert.equal(typeof r.json?.message, 'string');
      }
    });
    await serverAlive();
  });

  test('the admin identity header is read by type', async () => {
    for (const identity of ['[]', '{"tokenIdentifier":5}', '{"tokenIdentifier":"a\\u0000b"}', 'null', '"x"']) {
      const r = await dojo.http('POST', '/api/query', {
        headers: { Authorization: `Convex ${dojo.adminKey}:${Buffer.from(identity).toString('base64')}` },
        body: { path: 'users:me', args: {} },
      });
      assert.equal(r.status, 400, `${identity}: ${r.text}`);
      assert.equal(r.json.code, 'InvalidHeaderFailure');
    }
    await serverAlive();
  });
});
