// cache.test.mjs — the query cache is never stale. For every query of
// api.md §3: asked twice, the second answer comes from the cache (counted
// in /metrics); a write that cannot change it leaves the entry in place
// (still answered from the cache); a write that changes it is visible to the
// very next query, over HTTP and to a new subscription. Identities never
// share an entry; the cache keeps to its byte bound under many distinct
// queries.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { ConvexHttpClient } from 'convex/browser';

import { checkAfterEach, makeFunctionReference as ref, startDojo } from './lib/dojo.mjs';
import { startIssuer } from './lib/issuer.mjs';
import { adminClient, api, input, signUp } from './lib/app.mjs';
import { RawSyncClient, tsToBigInt } from './lib/sync_raw.mjs';

const WORKER_KEY = `wk-${randomBytes(24).toString('hex')}`;
let issuer;
let dojo;
let admin;
checkAfterEach(() => dojo);

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer, env: { SIGNUP_CREDITS: '100', WORKER_KEY } });
  admin = adminClient(dojo);
});
after(async () => {
  await issuer?.close();
});

async function counters() {
  const text = (await dojo.http('GET', '/metrics')).text;
  const read = (name) => Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1]);
  return {
    hits: read('dojo_query_cache_hits_total'),
    invalidations: read('dojo_query_cache_invalidations_total'),
    evictions: read('dojo_query_cache_evictions_total'),
    bytes: Number(text.match(/dojo_bounded_bytes\{structure="query_cache"\} (\d+)/)[1]),
    max: Number(text.match(/dojo_bounded_bytes_max\{structure="query_cache"\} (\d+)/)[1]),
  };
}

/**
 * Waits until the server has handed every commit it has answered to its
 * listeners. On PostgreSQL a commit reaches them with its notice, which may
 * come after the mutation was answered; until it has, the cache answers
 * nobody (it cannot know yet whether that commit changed an entry) and the
 * query runs on the store instead — correct, but not what fromCache asks.
 */
async function settled() {
  const answered = tsToBigInt((await dojo.http('POST', '/api/query_ts', { body: {} })).json.ts);
  for (let i = 0; i < 500; i++) {
    const text = (await dojo.http('GET', '/metrics')).text;
    const processed = BigInt(text.match(/^dojo_commit_timestamp_ns (\d+)$/m)[1]);
    if (processed >= answered) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('the server did not process its own commits within 5 s');
}

/** Runs ask() once the server has settled, and says whether the cache answered it. */
async function fromCache(ask) {
  await settled();
  const before = (await counters()).hits;
  const value = await ask();
  return { value, hit: (await counters()).hits > before };
}

/** The value a fresh subscription to fn(args) gets first, for a token. */
async function subscribed(token, fn, args) {
  const c = await RawSyncClient.connect(dojo.url);
  c.authenticate(token);
  c.add(0, fn, args);
  await c.waitFor(() => c.updatesFor(0).length > 0, { what: `${fn} over the WebSocket` });
  const value = c.valueOf(0);
  c.close();
  return value;
}

function worker() {
  const client = new ConvexHttpClient(dojo.url, { logger: false });
  client.setAdminAuth(WORKER_KEY);
  return client;
}

async function upload(a) {
  const url = await a.client.mutation(ref('files:generateUploadUrl'), {});
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'hello' });
  assert.equal(res.status, 200);
  return (await res.json()).storageId;
}

/**
 * One query of §3: how to ask it (client, args), a write that cannot change
 * its answer, one that does, and what the answer must show after it.
 */
const cases = {
  'users:me': {
    async setup(a, b) {
      return { ask: () => a.client.query(api.me, {}), fn: 'users:me', args: {} };
    },
    unrelated: (a, b) => admin.mutation(api.grantCredits, { userId: b.user._id, amount: 3 }),
    change: (a) => admin.mutation(api.grantCredits, { userId: a.user._id, amount: 5 }),
    changed: (before, after) => after.credits === before.credits + 5,
  },
  'workflows:list': {
    async setup(a) {
      await a.client.mutation(api.createWorkflow, { title: 'one' });
      return { ask: () => a.client.query(api.listWorkflows, {}), fn: 'workflows:list', args: {} };
    },
    unrelated: (a, b) => b.client.mutation(api.createWorkflow, { title: 'not yours' }),
    change: (a) => a.client.mutation(api.createWorkflow, { title: 'two' }),
    changed: (before, after) => after.length === before.length + 1,
  },
  'workflows:get': {
    async setup(a) {
      const id = await a.client.mutation(api.createWorkflow, { title: 'one' });
      this.other = await a.client.mutation(api.createWorkflow, { title: 'other' });
      this.id = id;
      return { ask: () => a.client.query(api.getWorkflow, { id }), fn: 'workflows:get', args: { id } };
    },
    unrelated(a) {
      return a.client.mutation(api.updateWorkflow, { id: this.other, title: 'renamed other' });
    },
    change(a) {
      return a.client.mutation(api.updateWorkflow, { id: this.id, title: 'renamed' });
    },
    changed: (before, after) => before.title === 'one' && after.title === 'renamed',
  },
  'runs:list': {
    async setup(a) {
      const args = { paginationOpts: { numItems: 10, cursor: null } };
      return { ask: () => a.client.query(api.listRuns, args), fn: 'runs:list', args };
    },
    unrelated: (a, b) => b.client.mutation(api.createRun, { input: input() }),
    change: (a) => a.client.mutation(api.createRun, { input: input() }),
    changed: (before, after) => after.page.length === before.page.length + 1,
  },
  'runs:get': {
    async setup(a) {
      const id = await a.client.mutation(api.createRun, { input: input() });
      this.id = id;
      return { ask: () => a.client.query(api.getRun, { id }), fn: 'runs:get', args: { id } };
    },
    unrelated: (a, b) => b.client.mutation(api.createRun, { input: input() }),
    async change() {
      // The worker claims runs oldest first: claim until it holds this one.
      for (;;) {
        const run = await worker().mutation(api.claim, { workerId: 'w-cache' });
        if (run._id === this.id) return;
      }
    },
    changed: (before, after) => before.status === 'queued' && after.status === 'processing',
  },
  'transactions:list': {
    async setup(a) {
      const args = { paginationOpts: { numItems: 50, cursor: null } };
      return { ask: () => a.client.query(api.transactions, args), fn: 'transactions:list', args };
    },
    unrelated: (a, b) => admin.mutation(api.grantCredits, { userId: b.user._id, amount: 1 }),
    change: (a) => admin.mutation(api.grantCredits, { userId: a.user._id, amount: 1 }),
    changed: (before, after) => after.page.length === before.page.length + 1,
  },
  'files:getMetadata': {
    async setup(a) {
      const storageId = await upload(a);
      this.storageId = storageId;
      const args = { storageId };
      return { ask: () => a.client.query(ref('files:getMetadata'), args), fn: 'files:getMetadata', args };
    },
    unrelated: (a) => upload(a),
    change(a) {
      return a.client.mutation(ref('files:remove'), { storageId: this.storageId });
    },
    changed: (before, after) => before !== null && after === null,
  },
  'files:getUrl': {
    async setup(a) {
      const storageId = await upload(a);
      this.storageId = storageId;
      const args = { storageId };
      return { ask: () => a.client.query(ref('files:getUrl'), args), fn: 'files:getUrl', args };
    },
    unrelated: (a, b) => upload(b),
    change(a) {
      return a.client.mutation(ref('files:remove'), { storageId: this.storageId });
    },
    changed: (before, after) => typeof before === 'string' && after === null,
  },
};

describe('every query of the contract', () => {
  for (const [name, spec] of Object.entries(cases)) {
    test(`${name}: cached, kept across an unrelated write, fresh after one that changes it (HTTP and WebSocket)`, async () => {
      const a = await signUp(dojo, issuer);
      const b = await signUp(dojo, issuer);
      const { ask, fn, args } = await spec.setup.call(spec, a, b);
      const first = await ask();
      const again = await fromCache(ask);
      assert.ok(again.hit, `${name}: the second ask comes from the cache`);
      assert.deepEqual(again.value, first);
      await spec.unrelated.call(spec, a, b);
      const kept = await fromCache(ask);
      assert.ok(kept.hit, `${name}: a write that cannot change it leaves the entry in place`);
      assert.deepEqual(kept.value, first);
      await spec.change.call(spec, a, b);
      const fresh = await ask();
      assert.ok(spec.changed(first, fresh), `${name}: the next query sees the write: ${JSON.stringify(fresh).slice(0, 300)}`);
      const overWs = await subscribed(a.token, fn, args);
      assert.deepEqual(overWs, fresh, `${name}: a new subscription sees it too`);
    });
  }

  test('runs:queue (worker key): cached, and fresh after a run is created', async () => {
    const a = await signUp(dojo, issuer);
    const w = worker();
    const first = await w.query(ref('runs:queue'), {});
    assert.ok((await fromCache(() => w.query(ref('runs:queue'), {}))).hit);
    await a.client.mutation(api.createWorkflow, { title: 'unrelated' });
    assert.ok((await fromCache(() => w.query(ref('runs:queue'), {}))).hit);
    await a.client.mutation(api.createRun, { input: input() });
    const fresh = await w.query(ref('runs:queue'), {});
    assert.equal(fresh.queued, first.queued + 1);
  });
});

describe('/api/query_batch', () => {
  test('a batch whose every query is cached is answered from the cache, and fresh after a write', async () => {
    const a = await signUp(dojo, issuer);
    const auth = { Authorization: `Bearer ${a.token}` };
    const batch = { queries: [{ path: 'users:me', args: {} }, { path: 'workflows:list', args: {}, format: 'json' }] };
    const ask = () => dojo.http('POST', '/api/query_batch', { headers: auth, body: batch });
    const first = await ask();
    assert.equal(first.status, 200, first.text);
    const again = await fromCache(ask);
    assert.ok(again.hit, 'the second batch comes from the cache');
    assert.deepEqual(again.value.json, first.json);
    await a.client.mutation(api.createWorkflow, { title: 'new' });
    const fresh = (await ask()).json;
    assert.equal(fresh.results[1].value.length, first.json.results[1].value.length + 1);
    assert.equal(fresh.results[0].status, 'success');
  });
});

describe('identities', () => {
  test('a cached answer is never served to another identity, nor to nobody', async () => {
    const a = await signUp(dojo, issuer);
    const b = await signUp(dojo, issuer);
    await a.client.query(api.me, {});
    assert.equal((await fromCache(() => a.client.query(api.me, {}))).value._id, a.user._id);
    assert.equal((await b.client.query(api.me, {}))._id, b.user._id);
    assert.equal(await dojo.httpClient().query(api.me, {}), null);
    const wf = await a.client.mutation(api.createWorkflow, { title: 'private' });
    assert.equal((await a.client.query(api.getWorkflow, { id: wf })).title, 'private');
    assert.equal(await b.client.query(api.getWorkflow, { id: wf }), null);
    // And the worker key's entry is its own.
    await worker().query(ref('runs:queue'), {});
    const anonymous = await dojo.http('POST', '/api/query', { body: { path: 'runs:queue', args: {} } });
    assert.equal(anonymous.json.status, 'error', anonymous.text);
  });
});

describe('the byte bound', () => {
  test('many distinct queries keep the cache within its bound, evicting the least recently used', async () => {
    const small = await startDojo({ issuer, args: ['--query-cache-bytes', '200000'] });
    try {
      const a = await signUp(small, issuer);
      const ids = [];
      for (let i = 0; i < 40; i++) ids.push(await a.client.mutation(api.createWorkflow, { title: `w${i}`, nodes: ['x'.repeat(4000)] }));
      const read = async () => {
        const text = (await small.http('GET', '/metrics')).text;
        return {
          bytes: Number(text.match(/dojo_bounded_bytes\{structure="query_cache"\} (\d+)/)[1]),
          max: Number(text.match(/dojo_bounded_bytes_max\{structure="query_cache"\} (\d+)/)[1]),
          evictions: Number(text.match(/^dojo_query_cache_evictions_total (\d+)/m)[1]),
        };
      };
      let peak = 0;
      for (let round = 0; round < 3; round++) {
        for (const id of ids) {
          assert.equal((await a.client.query(api.getWorkflow, { id }))._id, id);
          for (let n = 1; n <= 5; n++) await a.client.query(api.listRuns, { paginationOpts: { numItems: n, cursor: null } });
          peak = Math.max(peak, (await read()).bytes);
        }
      }
      const m = await read();
      assert.equal(m.max, 200000);
      assert.ok(peak <= m.max, `the cache held ${peak} bytes over its bound ${m.max}`);
      assert.ok(m.evictions > 0, 'entries were evicted to keep to it');
    } finally {
      await small.stop();
    }
  });

  test('--query-cache-bytes 0 turns the cache off', async () => {
    const off = await startDojo({ issuer, args: ['--query-cache-bytes', '0'] });
    try {
      const a = await signUp(off, issuer);
      await a.client.query(api.me, {});
      await a.client.query(api.me, {});
      const text = (await off.http('GET', '/metrics')).text;
      assert.match(text, /^dojo_query_cache_hits_total 0$/m);
    } finally {
      await off.stop();
    }
  });
});
