// overview.test.mjs — the system queries behind the live dashboard (issue
// 13), over HTTP and the sync protocol: `_system:tables` gives each table's
// fields and indexes; `_system:browse` pages in the order of any index;
// `_system:overviewRuns`, `_system:overviewCredits` and
// `_system:overviewQueue` count what the Overview charts draw, read at most
// their named bounds (and say when they were cut), exist for the admin key
// only, and — subscribed to — are pushed again when a write lands in what
// they read.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { checkAfterEach, startDojo, waitFor } from './lib/dojo.mjs';
import { RawSyncClient } from './lib/sync_raw.mjs';

const CHART_ROWS_MAX = 2000; // LIMIT_DASHBOARD_CHART_ROWS_MAX
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

let dojo;

before(async () => {
  dojo = await startDojo();
});
checkAfterEach(() => dojo);

let users = 0;
async function callAs(tokenIdentifier, path, args = {}) {
  const identity = Buffer.from(JSON.stringify({ tokenIdentifier })).toString('base64');
  const res = await dojo.http('POST', '/api/function', {
    headers: { Authorization: `Convex ${dojo.adminKey}:${identity}` },
    body: { path, args, format: 'json' },
  });
  assert.equal(res.json?.status, 'success', res.text);
  return res.json.value;
}

async function userWithCredits(amount) {
  const tid = `https://issuer.test|overview_${++users}_${Date.now()}`;
  const user = await callAs(tid, 'users:getOrCreate');
  if (amount) await dojo.adminCall('admin:grantCredits', { userId: user._id, amount });
  return { tid, user };
}

const sum = (rows, key) => rows.reduce((s, r) => s + (r[key] || 0), 0);

test('_system:tables gives every table its declared fields and indexes', async () => {
  const tables = Object.fromEntries((await dojo.adminCall('_system:tables')).map((t) => [t.name, t]));
  assert.deepEqual(tables.users.fields, ['name', 'email', 'pictureUrl', 'credits', 'tokenIdentifier', 'identity']);
  assert.deepEqual(tables.users.indexes, [
    { name: 'by_creation_time', fields: ['_creationTime'] },
    { name: 'by_token', fields: ['tokenIdentifier'] },
    { name: 'by_email', fields: ['email'] },
  ]);
  assert.ok(tables.runs.indexes.some((ix) => ix.name === 'by_status' && ix.fields.join() === 'status,_creationTime'));
  assert.ok(tables.transactions.fields.includes('balanceAfter'));
});

test('_system:browse pages in the order of any index, both ways, and names a wrong index', async () => {
  const { tid } = await userWithCredits(10);
  const made = [];
  for (let i = 0; i < 3; i++) made.push(await callAs(tid, 'runs:create', { input: { model: 'm', prompt: `p${i}` } }));
  await dojo.adminCall('runs:claim', { workerId: 'w' }); // the oldest becomes processing
  const all = async (order) => {
    const rows = [];
    let cursor = null;
    for (;;) {
      const r = await dojo.adminCall('_system:browse', { table: 'runs', index: 'by_status', order, paginationOpts: { numItems: 2, cursor } });
      rows.push(...r.page);
      if (r.isDone) return rows;
      cursor = r.continueCursor;
    }
  };
  const asc = await all('asc');
  const cmp = (x, y) =>
    x.status < y.status ? -1 : x.status > y.status ? 1 : x._creationTime - y._creationTime || (x._id < y._id ? -1 : 1);
  assert.deepEqual(asc.map((r) => r._id), [...asc].sort(cmp).map((r) => r._id), 'ascending by (status, _creationTime, _id)');
  assert.deepEqual((await all('desc')).map((r) => r._id), asc.map((r) => r._id).reverse());
  for (const id of made) assert.ok(asc.some((r) => r._id === id));
  const bad = await dojo.adminCallRaw('_system:browse', { table: 'runs', index: 'by_nothing', paginationOpts: { numItems: 5, cursor: null } });
  assert.equal(bad.status, 'error');
  assert.equal(bad.errorData.code, 'INVALID_ARGUMENT');
  assert.match(bad.errorMessage, /^Invalid argument `index`: table runs has no index "by_nothing" \(indexes: by_creation_time, by_user, .*by_status/);
  const badOrder = await dojo.adminCallRaw('_system:browse', { table: 'runs', order: 'sideways', paginationOpts: { numItems: 5, cursor: null } });
  assert.equal(badOrder.errorData.code, 'INVALID_ARGUMENT');
});

test('the Overview queries count runs by minute and status, credits by day, and the queue', async () => {
  const since = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS - 59 * MINUTE_MS;
  const dayFrom = Math.floor(Date.now() / DAY_MS) * DAY_MS - 13 * DAY_MS;
  const before = {
    runs: await dojo.adminCall('_system:overviewRuns', { sinceMs: since, bucketMs: MINUTE_MS }),
    credits: await dojo.adminCall('_system:overviewCredits', { sinceMs: dayFrom }),
    queue: await dojo.adminCall('_system:overviewQueue'),
  };
  const { tid } = await userWithCredits(20);
  const a = await callAs(tid, 'runs:create', { input: { model: 'm', prompt: 'a' } });
  await callAs(tid, 'runs:create', { input: { model: 'm', prompt: 'b' } });
  await callAs(tid, 'runs:cancel', { id: a }); // failed, refunded

  const runs = await dojo.adminCall('_system:overviewRuns', { sinceMs: since, bucketMs: MINUTE_MS });
  assert.equal(runs.truncated, false);
  assert.equal(runs.rowBound, CHART_ROWS_MAX);
  assert.equal(runs.coveredFromMs, since);
  for (const b of runs.buckets) assert.equal(b.t % MINUTE_MS, 0);
  assert.equal(sum(runs.buckets, 'queued') - sum(before.runs.buckets, 'queued'), 1);
  assert.equal(sum(runs.buckets, 'failed') - sum(before.runs.buckets, 'failed'), 1);

  const credits = await dojo.adminCall('_system:overviewCredits', { sinceMs: dayFrom });
  const today = credits.days.at(-1);
  assert.equal(today.t, Math.floor(Date.now() / DAY_MS) * DAY_MS);
  const d = (k) => sum(credits.days, k) - sum(before.credits.days, k);
  assert.deepEqual({ granted: d('granted'), spent: d('spent'), refunded: d('refunded') }, { granted: 20, spent: 2, refunded: 1 });

  const queue = await dojo.adminCall('_system:overviewQueue');
  assert.equal(queue.queued, before.queue.queued + 1);
  assert.equal(queue.queuedMore, false);
  assert.equal(typeof queue.oldestQueuedAt, 'number');

  const tooFar = await dojo.adminCallRaw('_system:overviewRuns', { sinceMs: Date.now() - 100 * DAY_MS, bucketMs: MINUTE_MS });
  assert.equal(tooFar.errorData.code, 'INVALID_ARGUMENT');
  assert.match(tooFar.errorMessage, /LIMIT_DASHBOARD_CHART_WINDOW_MS_MAX/);
  const badBucket = await dojo.adminCallRaw('_system:overviewRuns', { sinceMs: since, bucketMs: 5 });
  assert.equal(badBucket.errorData.code, 'INVALID_ARGUMENT');
});

test('the Overview queries exist for the admin key only', async () => {
  for (const path of ['_system:overviewRuns', '_system:overviewCredits', '_system:overviewQueue']) {
    const anonymous = await dojo.http('POST', '/api/function', { body: { path, args: {}, format: 'json' } });
    assert.equal(anonymous.json?.status, 'error', `${path}: ${anonymous.text}`);
    assert.equal(anonymous.json.errorMessage, `Could not find public function for '${path}'.`);
    const wrongKey = await dojo.http('POST', '/api/function', {
      headers: { Authorization: 'Convex not-the-key' },
      body: { path, args: {}, format: 'json' },
    });
    assert.equal(wrongKey.status, 401);
    assert.equal(wrongKey.json.code, 'BadAdminKey');
  }
});

test('a subscribed Overview query is pushed again when a write lands in what it read', async () => {
  const client = await RawSyncClient.connect(dojo.url);
  try {
    client.authenticateAdmin(dojo.adminKey);
    client.add(0, '_system:overviewQueue', {});
    const first = await client.waitFor(() => client.valueOf(0), { what: 'the first queue count' });
    const { tid } = await userWithCredits(3);
    const updates = client.updatesFor(0).length;
    await callAs(tid, 'runs:create', { input: { model: 'm', prompt: 'pushed' } });
    const pushed = await client.waitFor(
      () => {
        const v = client.valueOf(0);
        return client.updatesFor(0).length > updates && v.queued === first.queued + 1 ? v : null;
      },
      { timeoutMs: 15_000, what: 'a pushed queue count' },
    );
    assert.equal(pushed.queued, first.queued + 1);
  } finally {
    client.close();
  }
});

test('a chart reads at most LIMIT_DASHBOARD_CHART_ROWS_MAX rows, newest first, and says from when it is complete', async () => {
  const { tid } = await userWithCredits(CHART_ROWS_MAX + 50);
  const since = Date.now() - 1;
  const writers = 8;
  let left = CHART_ROWS_MAX + 10;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (left-- > 0) await callAs(tid, 'runs:create', { input: { model: 'm', prompt: 'bulk' } });
    }),
  );
  const r = await dojo.adminCall('_system:overviewRuns', { sinceMs: since, bucketMs: MINUTE_MS });
  assert.equal(r.truncated, true);
  assert.equal(r.rowsRead, CHART_ROWS_MAX);
  assert.equal(sum(r.buckets, 'queued'), CHART_ROWS_MAX);
  assert.ok(r.coveredFromMs > since, 'complete only from the oldest row read');
  const q = await dojo.adminCall('_system:overviewQueue');
  assert.equal(q.queued, 1000, 'LIMIT_DASHBOARD_QUEUE_ROWS_MAX');
  assert.equal(q.queuedMore, true);
});
