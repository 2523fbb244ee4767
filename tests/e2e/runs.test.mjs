// runs.test.mjs — runs:create and the run lifecycle (api.md §3 "runs") with
// the real convex client: the cost from PRICING and never from the client,
// Insufficient credits / UNKNOWN_MODEL / no user with nothing written, 50
// concurrent creates that never overspend, runs:get/list (newest first,
// filtered), cancel with its refund, the worker functions (claim oldest
// first, heartbeat, complete, fail with its refund), every other transition
// refused with nothing changed, leaseSeconds bounds, 4 workers that never
// share a run, and leases that expire back to the queue and, after
// MAX_ATTEMPTS, to "Lease expired" with a refund.
//
// runs:claim takes the oldest queued run of any user, so a test that claims
// first drains what earlier tests left queued (drainQueue).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConvexClient } from 'convex/browser';
import WebSocket from 'ws';

import { checkAfterEach, startDojo, waitFor } from './lib/dojo.mjs';
import { startIssuer } from './lib/issuer.mjs';
import {
  TABLE,
  adminClient,
  allPages,
  api,
  assertNewestFirst,
  input,
  invalidArgument,
  rejectsWith,
  signUp,
  snapshot,
  unusedId,
} from './lib/app.mjs';

let issuer;
let dojo;
let worker; // a ConvexHttpClient with the admin key
const servers = [];

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer, env: { SIGNUP_CREDITS: '0', PRICING: null, MAX_ATTEMPTS: null } });
  servers.push(dojo);
  worker = adminClient(dojo);
});
checkAfterEach(() => servers);
after(() => issuer?.close());

const USER_NOT_FOUND = { code: 'NOT_FOUND', message: 'User not found — call users:getOrCreate first' };
const RUN_NOT_FOUND = { code: 'NOT_FOUND', message: 'Run not found' };
const WORKFLOW_NOT_FOUND = { code: 'NOT_FOUND', message: 'Workflow not found' };
const NO_IDENTITY = { code: 'UNAUTHENTICATED', message: 'No identity found' };
const INVALID_TRANSITION = { code: 'INVALID_TRANSITION' };
const insufficient = (balance, cost) => ({
  code: 'INSUFFICIENT_CREDITS',
  message: 'Insufficient credits',
  data: { code: 'INSUFFICIENT_CREDITS', balance, cost },
});

/** A new user holding credits (granted by the admin). */
async function funded(credits) {
  const u = await signUp(dojo, issuer);
  if (credits > 0) await dojo.adminCall('admin:grantCredits', { userId: u.user._id, amount: credits });
  return u;
}

const credits = async (u) => (await u.client.query(api.me, {})).credits;
const getRun = (u, id) => u.client.query(api.getRun, { id });
const page = (numItems, cursor = null) => ({ paginationOpts: { numItems, cursor } });

/** Sets deployment variables with `dojo env set` for the length of fn, then
 *  removes them again. */
async function withEnv(vars, fn) {
  for (const [name, value] of Object.entries(vars)) {
    const r = await dojo.cli(['env', 'set', name, value]);
    assert.equal(r.code, 0, `dojo env set ${name}: ${r.stderr}`);
  }
  try {
    return await fn();
  } finally {
    for (const name of Object.keys(vars)) {
      const r = await dojo.cli(['env', 'remove', name]);
      assert.equal(r.code, 0, `dojo env remove ${name}: ${r.stderr}`);
    }
  }
}

/** Claims and completes every queued run, so the next claim is the test's own. */
async function drainQueue() {
  for (let i = 0; i < 10_000; i++) {
    const run = await worker.mutation(api.claim, { workerId: 'drain' });
    if (run === null) return;
    await worker.mutation(api.complete, { id: run._id, workerId: 'drain', output: 'https://cdn.example/drained.png' });
  }
  throw new Error('drainQueue: the queue never emptied');
}

/** A run of u's, claimed by workerId (the queue drained first). */
async function processingRun(u, workerId = 'w-proc', args = {}) {
  await drainQueue();
  const id = await u.client.mutation(api.createRun, { input: input() });
  const claimed = await worker.mutation(api.claim, { workerId, ...args });
  assert.equal(claimed?._id, id);
  return claimed;
}

describe('runs:create', () => {
  test('create charges the default price of 1: a queued run, a "run" ledger row of -1 with balanceAfter', async () => {
    const a = await funded(5);
    const settings = { width: 1024, height: 768, steps: 30, style: { preset: 'photo' } };
    const runInput = { model: 'flux', prompt: 'a red fox', settings };
    const id = await a.client.mutation(api.createRun, { input: runInput });
    assert.equal(typeof id, 'string');

    const run = await getRun(a, id);
    assert.equal(run._id, id);
    assert.equal(run.userId, a.user._id);
    assert.equal(run.status, 'queued');
    assert.deepEqual(run.input, runInput);
    assert.equal(run.cost, 1);
    assert.equal(run.attempts, 0);
    for (const absent of ['workflowId', 'output', 'error', 'workerId', 'leaseExpiresAt', 'startedAt', 'finishedAt']) {
      assert.equal(run[absent], undefined, `a new run has no ${absent}`);
    }

    assert.equal(await credits(a), 4);
    const ledger = (await allPages(a.client, api.transactions)).rows;
    assert.equal(ledger.length, 2, JSON.stringify(ledger));
    const [row] = ledger;
    assert.equal(row.kind, 'run');
    assert.equal(row.amount, -1);
    assert.equal(row.balanceAfter, 4);
    assert.equal(row.runId, id);
    assert.equal(row.userId, a.user._id);
    assert.equal(row.actor, a.tokenIdentifier);
  });

  test("create with one of the caller's workflows stores its workflowId", async () => {
    const a = await funded(1);
    const wf = await a.client.mutation(api.createWorkflow, { title: 'graph' });
    const id = await a.client.mutation(api.createRun, { input: input(), workflowId: wf });
    assert.equal((await getRun(a, id)).workflowId, wf);
  });

  test('the cost comes from PRICING set with dojo env set, without a restart', async () => {
    const a = await funded(20);
    await withEnv({ PRICING: '{"default":2,"models":{"video":5}}' }, async () => {
      const video = await a.client.mutation(api.createRun, { input: input('video') });
      const image = await a.client.mutation(api.createRun, { input: input('flux') });
      assert.equal((await getRun(a, video)).cost, 5);
      assert.equal((await getRun(a, image)).cost, 2);
      assert.equal(await credits(a), 13);
      const [imageRow, videoRow] = (await allPages(a.client, api.transactions)).rows;
      assert.deepEqual([videoRow.amount, videoRow.balanceAfter, videoRow.runId], [-5, 15, video]);
      assert.deepEqual([imageRow.amount, imageRow.balanceAfter, imageRow.runId], [-2, 13, image]);
    });
    // Removed again: the default of 1 credit applies.
    const back = await a.client.mutation(api.createRun, { input: input('video') });
    assert.equal((await getRun(a, back)).cost, 1);
    assert.equal(await credits(a), 12);
  });

  test('PRICING from the process environment applies while no stored value exists', async () => {
    const s = await startDojo({ issuer, env: { SIGNUP_CREDITS: '20', PRICING: '{"default":3}' } });
    servers.push(s);
    const a = await signUp(s, issuer);
    const cost = async () => {
      const id = await a.client.mutation(api.createRun, { input: input() });
      return (await a.client.query(api.getRun, { id })).cost;
    };
    assert.equal(await cost(), 3);
    assert.equal((await s.cli(['env', 'set', 'PRICING', '{"default":4}'])).code, 0);
    assert.equal(await cost(), 4, 'the stored value wins');
    assert.equal((await s.cli(['env', 'remove', 'PRICING'])).code, 0);
    assert.equal(await cost(), 3, 'the process environment again');
    assert.equal((await a.client.query(api.me, {})).credits, 10);
  });

  test('a price of 0 makes a free run with a "run" row of 0', async () => {
    const a = await funded(0);
    await withEnv({ PRICING: '{"default":0}' }, async () => {
      const id = await a.client.mutation(api.createRun, { input: input() });
      assert.equal((await getRun(a, id)).cost, 0);
      assert.equal(await credits(a), 0);
      const ledger = (await allPages(a.client, api.transactions)).rows;
      assert.deepEqual(
        ledger.map((t) => [t.kind, t.amount, t.balanceAfter, t.runId]),
        [['run', 0, 0, id]],
      );
    });
  });

  test('a cost sent by the client is refused as an unknown field and nothing is charged', async () => {
    const a = await funded(3);
    await rejectsWith(a.client.mutation(api.createRun, { input: input(), cost: 0 }), invalidArgument('cost'));
    await rejectsWith(
      a.client.mutation(api.createRun, { input: { ...input(), cost: 0 } }),
      invalidArgument('input.cost'),
    );
    assert.equal(await credits(a), 3);
    assert.deepEqual((await a.client.query(api.listRuns, page(10))).page, []);
  });

  test('a model with no price and no default is UNKNOWN_MODEL and nothing is written', async () => {
    const a = await funded(10);
    await withEnv({ PRICING: '{"models":{"video":5}}' }, async () => {
      const before = await snapshot(a.client);
      await rejectsWith(a.client.mutation(api.createRun, { input: input('flux') }), { code: 'UNKNOWN_MODEL' });
      assert.deepEqual(await snapshot(a.client), before);
      // A priced model still works.
      await a.client.mutation(api.createRun, { input: input('video') });
      assert.equal(await credits(a), 5);
    });
  });

  test('Insufficient credits carries {code, balance, cost} and writes nothing', async () => {
    const a = await funded(0);
    const before = await snapshot(a.client);
    await rejectsWith(a.client.mutation(api.createRun, { input: input() }), insufficient(0, 1));
    assert.deepEqual(await snapshot(a.client), before);

    await dojo.adminCall('admin:grantCredits', { userId: a.user._id, amount: 3 });
    await withEnv({ PRICING: '{"default":1,"models":{"video":5}}' }, async () => {
      const funded3 = await snapshot(a.client);
      await rejectsWith(a.client.mutation(api.createRun, { input: input('video') }), insufficient(3, 5));
      assert.deepEqual(await snapshot(a.client), funded3);
      // Exactly the balance is enough.
      await a.client.mutation(api.createRun, { input: input('flux') });
      await a.client.mutation(api.createRun, { input: input('flux') });
      await a.client.mutation(api.createRun, { input: input('flux') });
      assert.equal(await credits(a), 0);
      await rejectsWith(a.client.mutation(api.createRun, { input: input('flux') }), insufficient(0, 1));
    });
  });

  test('a caller without a user gets NOT_FOUND "User not found — call users:getOrCreate first"', async () => {
    const a = await signUp(dojo, issuer, { create: false });
    const usersBefore = (await dojo.adminCall('admin:verifyLedger', {})).usersChecked;
    await rejectsWith(a.client.mutation(api.createRun, { input: input() }), USER_NOT_FOUND);
    assert.equal(await a.client.query(api.me, {}), null, 'no user was created');
    assert.equal((await dojo.adminCall('admin:verifyLedger', {})).usersChecked, usersBefore);
  });

  test('without an identity create, get, list and cancel fail with "No identity found"', async () => {
    const a = await funded(1);
    const id = await a.client.mutation(api.createRun, { input: input() });
    const anonymous = dojo.httpClient();
    await rejectsWith(anonymous.mutation(api.createRun, { input: input() }), NO_IDENTITY);
    await rejectsWith(anonymous.query(api.getRun, { id }), NO_IDENTITY);
    await rejectsWith(anonymous.query(api.listRuns, page(10)), NO_IDENTITY);
    await rejectsWith(anonymous.mutation(api.cancelRun, { id }), NO_IDENTITY);
    assert.equal((await getRun(a, id)).status, 'queued');
  });

  test('a workflowId that is not the caller\'s is "Workflow not found" and nothing is charged', async () => {
    const a = await funded(5);
    const b = await funded(5);
    const foreign = await a.client.mutation(api.createWorkflow, { title: "A's" });
    const removed = await b.client.mutation(api.createWorkflow, { title: 'removed' });
    await b.client.mutation(api.removeWorkflow, { id: removed });
    const before = await snapshot(b.client);
    await rejectsWith(b.client.mutation(api.createRun, { input: input(), workflowId: foreign }), WORKFLOW_NOT_FOUND);
    await rejectsWith(b.client.mutation(api.createRun, { input: input(), workflowId: removed }), WORKFLOW_NOT_FOUND);
    const runId = await a.client.mutation(api.createRun, { input: input() });
    await rejectsWith(
      b.client.mutation(api.createRun, { input: input(), workflowId: runId }),
      invalidArgument('workflowId'),
    );
    assert.deepEqual(await snapshot(b.client), before);
  });

  test('input is validated: missing, mistyped and unknown fields are INVALID_ARGUMENT naming the field', async () => {
    const a = await funded(5);
    const cases = [
      [{}, 'input'],
      [{ input: { prompt: 'p' } }, 'input.model'],
      [{ input: { model: 'flux' } }, 'input.prompt'],
      [{ input: { model: 7, prompt: 'p' } }, 'input.model'],
      [{ input: { model: 'flux', prompt: 'p', settings: 'fast' } }, 'input.settings'],
      [{ input: { model: 'flux', prompt: 'p', seed: 1 } }, 'input.seed'],
      [{ input: input(), workflowId: 'nope' }, 'workflowId'],
      [{ input: input(), status: 'completed' }, 'status'],
    ];
    for (const [args, field] of cases) {
      await rejectsWith(a.client.mutation(api.createRun, args), invalidArgument(field));
    }
    assert.equal(await credits(a), 5);
    assert.deepEqual((await a.client.query(api.listRuns, page(10))).page, []);
  });

  test('50 concurrent creates by a user with 10 credits: exactly 10 runs, balance 0, 40 Insufficient credits', async () => {
    const a = await funded(10);
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        a.client.mutation(api.createRun, { input: input('flux', `race ${i}`) }, { skipQueue: true }),
      ),
    );
    const created = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const refused = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
    assert.equal(created.length, 10);
    assert.equal(new Set(created).size, 10);
    assert.equal(refused.length, 40);
    for (const err of refused) {
      assert.equal(err.message, 'Insufficient credits');
      assert.deepEqual(err.data, { code: 'INSUFFICIENT_CREDITS', balance: 0, cost: 1 });
    }
    assert.equal(await credits(a), 0);
    const runs = (await allPages(a.client, api.listRuns)).rows;
    assert.deepEqual(runs.map((r) => r._id).sort(), [...created].sort());
    const ledger = (await allPages(a.client, api.transactions)).rows;
    assert.equal(ledger.filter((t) => t.kind === 'run').length, 10);
    assert.deepEqual(
      ledger.map((t) => t.balanceAfter),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      'each debit is one credit below the one before',
    );
  });

  test('50 concurrent creates over one WebSocket by a user with 10 credits: exactly 10 runs', async () => {
    const a = await funded(10);
    const ws = new ConvexClient(dojo.url, {
      webSocketConstructor: WebSocket,
      logger: false,
      unsavedChangesWarning: false,
    });
    try {
      await new Promise((resolve) =>
        ws.setAuth(
          async () => a.token,
          (ok) => ok && resolve(),
        ),
      );
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) => ws.mutation(api.createRun, { input: input('flux', `ws ${i}`) })),
      );
      const created = results.filter((r) => r.status === 'fulfilled');
      const refused = results.filter((r) => r.status === 'rejected');
      assert.equal(created.length, 10);
      assert.equal(refused.length, 40);
      for (const r of refused) assert.equal(r.reason.data?.code, 'INSUFFICIENT_CREDITS', r.reason.message);
    } finally {
      await ws.close();
    }
    assert.equal(await credits(a), 0);
    assert.equal((await allPages(a.client, api.listRuns)).rows.length, 10);
  });
});

describe('runs:get and runs:list', () => {
  test("runs:get returns the owner's run, and null for another user's run and for a missing id", async () => {
    const a = await funded(1);
    const b = await funded(1);
    const id = await a.client.mutation(api.createRun, { input: input() });
    assert.equal((await getRun(a, id))._id, id);
    assert.equal(await getRun(b, id), null);
    assert.equal(await getRun(a, unusedId(TABLE.runs)), null);
    const withoutUser = await signUp(dojo, issuer, { create: false });
    assert.equal(await getRun(withoutUser, id), null);
    await rejectsWith(a.client.query(api.getRun, { id: a.user._id }), invalidArgument('id'));
  });

  test('runs:list is newest first and filters by status, by workflowId, and by both', async () => {
    await drainQueue();
    const a = await funded(10);
    const wf1 = await a.client.mutation(api.createWorkflow, { title: 'one' });
    const wf2 = await a.client.mutation(api.createWorkflow, { title: 'two' });
    const create = (workflowId) =>
      a.client.mutation(api.createRun, { input: input(), ...(workflowId ? { workflowId } : {}) });
    const r1 = await create(wf1);
    const r2 = await create(wf2);
    const r3 = await create(null);
    const r4 = await create(wf1);
    const r5 = await create(wf1);
    assert.equal((await worker.mutation(api.claim, { workerId: 'w' }))._id, r1);
    await worker.mutation(api.complete, { id: r1, workerId: 'w', output: 'https://cdn.example/1.png' });
    assert.equal((await worker.mutation(api.claim, { workerId: 'w' }))._id, r2); // stays processing
    await a.client.mutation(api.cancelRun, { id: r3 });
    // r1 completed (wf1), r2 processing (wf2), r3 failed, r4 and r5 queued (wf1).

    const ids = async (filters, numItems = 100) =>
      (await allPages(a.client, api.listRuns, filters, numItems)).rows.map((r) => r._id);
    assert.deepEqual(await ids({}), [r5, r4, r3, r2, r1]);
    assert.deepEqual(await ids({ status: 'queued' }), [r5, r4]);
    assert.deepEqual(await ids({ status: 'processing' }), [r2]);
    assert.deepEqual(await ids({ status: 'completed' }), [r1]);
    assert.deepEqual(await ids({ status: 'failed' }), [r3]);
    assert.deepEqual(await ids({ workflowId: wf1 }), [r5, r4, r1]);
    assert.deepEqual(await ids({ workflowId: wf2 }), [r2]);
    assert.deepEqual(await ids({ workflowId: wf1, status: 'queued' }), [r5, r4]);
    assert.deepEqual(await ids({ workflowId: wf1, status: 'completed' }), [r1]);
    assert.deepEqual(await ids({ workflowId: wf2, status: 'queued' }), []);
    // The same with pages of one row.
    assert.deepEqual(await ids({}, 1), [r5, r4, r3, r2, r1]);
    assert.deepEqual(await ids({ workflowId: wf1 }, 1), [r5, r4, r1]);
    assert.deepEqual(await ids({ status: 'queued' }, 1), [r5, r4]);
    assert.deepEqual(await ids({ workflowId: wf1, status: 'queued' }, 1), [r5, r4]);

    const all = (await allPages(a.client, api.listRuns)).rows;
    assertNewestFirst(all, 'runs:list');
    for (const run of all) assert.deepEqual(run, await getRun(a, run._id));
    await rejectsWith(a.client.query(api.listRuns, { ...page(10), status: 'done' }), invalidArgument('status'));
  });

  test('runs:list of a user with no runs, or an identity with no user, is an empty finished page', async () => {
    const a = await funded(0);
    const none = await a.client.query(api.listRuns, page(10));
    assert.deepEqual(none.page, []);
    assert.equal(none.isDone, true);
    const withoutUser = await signUp(dojo, issuer, { create: false });
    const empty = await withoutUser.client.query(api.listRuns, page(10));
    assert.deepEqual(empty.page, []);
    assert.equal(empty.isDone, true);
  });
});

describe('runs:cancel', () => {
  test('cancelling a queued run makes it failed "Cancelled" and refunds it with a "refund" row', async () => {
    const a = await funded(3);
    const id = await a.client.mutation(api.createRun, { input: input() });
    assert.equal(await credits(a), 2);
    assert.equal(await a.client.mutation(api.cancelRun, { id }), null);
    const run = await getRun(a, id);
    assert.equal(run.status, 'failed');
    assert.equal(run.error, 'Cancelled');
    assert.equal(typeof run.finishedAt, 'number');
    assert.equal(run.cost, 1);
    assert.equal(await credits(a), 3);
    const [refund, debit] = (await allPages(a.client, api.transactions)).rows;
    assert.deepEqual([refund.kind, refund.amount, refund.balanceAfter, refund.runId], ['refund', 1, 3, id]);
    assert.equal(refund.actor, a.tokenIdentifier, 'the owner cancelled it');
    assert.deepEqual([debit.kind, debit.amount, debit.balanceAfter, debit.runId], ['run', -1, 2, id]);
    // A cancelled run is never claimed.
    await drainQueue();
    assert.equal((await getRun(a, id)).status, 'failed');
  });

  test('cancelling a run twice, or a processing or completed run, is INVALID_TRANSITION and changes nothing', async () => {
    const a = await funded(5);
    const cancelled = await a.client.mutation(api.createRun, { input: input() });
    await a.client.mutation(api.cancelRun, { id: cancelled });
    const processing = (await processingRun(a, 'w-cancel'))._id;
    const completed = (await processingRun(a, 'w-cancel'))._id;
    await worker.mutation(api.complete, { id: completed, workerId: 'w-cancel', output: 'https://cdn.example/c.png' });
    const before = await snapshot(a.client);
    for (const id of [cancelled, processing, completed]) {
      await rejectsWith(a.client.mutation(api.cancelRun, { id }), INVALID_TRANSITION);
    }
    assert.deepEqual(await snapshot(a.client), before);
  });

  test('cancelling another user\'s run or a missing run is NOT_FOUND "Run not found"', async () => {
    const a = await funded(1);
    const b = await funded(1);
    const id = await a.client.mutation(api.createRun, { input: input() });
    const before = await snapshot(a.client);
    await rejectsWith(b.client.mutation(api.cancelRun, { id }), RUN_NOT_FOUND);
    await rejectsWith(a.client.mutation(api.cancelRun, { id: unusedId(TABLE.runs) }), RUN_NOT_FOUND);
    assert.deepEqual(await snapshot(a.client), before);
  });
});

describe('worker functions', () => {
  test('runs:claim takes the oldest queued run first and returns null when the queue is empty', async () => {
    await drainQueue();
    assert.equal(await worker.mutation(api.claim, { workerId: 'w-order' }), null);
    const a = await funded(2);
    const b = await funded(2);
    const order = [];
    order.push(await a.client.mutation(api.createRun, { input: input() }));
    order.push(await b.client.mutation(api.createRun, { input: input() }));
    order.push(await a.client.mutation(api.createRun, { input: input() }));
    order.push(await b.client.mutation(api.createRun, { input: input() }));
    const claimed = [];
    for (let i = 0; i < 4; i++) claimed.push((await worker.mutation(api.claim, { workerId: 'w-order' }))._id);
    assert.deepEqual(claimed, order);
    assert.equal(await worker.mutation(api.claim, { workerId: 'w-order' }), null);
  });

  test('a claimed run is processing with workerId, startedAt, leaseExpiresAt and attempts + 1', async () => {
    const a = await funded(2);
    const before = Date.now();
    const claimed = await processingRun(a, 'w-claim', { leaseSeconds: 60 });
    assert.equal(claimed.status, 'processing');
    assert.equal(claimed.workerId, 'w-claim');
    assert.equal(claimed.attempts, 1);
    assert.equal(typeof claimed.startedAt, 'number');
    assert.ok(Math.abs(claimed.startedAt - before) < 10_000, `startedAt ${claimed.startedAt} near ${before}`);
    assert.ok(Math.abs(claimed.leaseExpiresAt - claimed.startedAt - 60_000) < 1, 'a 60-second lease');
    assert.deepEqual(await getRun(a, claimed._id), claimed, 'the owner sees what the worker got');

    const byDefault = await processingRun(a, 'w-claim');
    assert.ok(Math.abs(byDefault.leaseExpiresAt - byDefault.startedAt - 300_000) < 1, 'the default lease is 300 s');
  });

  test('runs:heartbeat extends the lease of the run the worker holds', async () => {
    const a = await funded(1);
    const claimed = await processingRun(a, 'w-beat', { leaseSeconds: 10 });
    assert.equal(
      await worker.mutation(api.heartbeat, { id: claimed._id, workerId: 'w-beat', leaseSeconds: 3600 }),
      null,
    );
    const longer = await getRun(a, claimed._id);
    assert.ok(longer.leaseExpiresAt >= claimed.leaseExpiresAt + 3_000_000, 'extended to about an hour');
    assert.ok(longer.leaseExpiresAt <= Date.now() + 3_600_000 + 1);
    assert.equal(longer.status, 'processing');
    assert.equal(longer.workerId, 'w-beat');
    assert.equal(longer.attempts, 1);
    assert.equal(longer.startedAt, claimed.startedAt);

    // "Extends": a heartbeat with the default 300 s never cuts the hour short.
    await worker.mutation(api.heartbeat, { id: claimed._id, workerId: 'w-beat' });
    const byDefault = await getRun(a, claimed._id);
    assert.equal(byDefault.leaseExpiresAt, longer.leaseExpiresAt, 'a shorter heartbeat does not shorten the lease');
  });

  test('runs:heartbeat with the default lease extends a short lease to 300 s from now', async () => {
    const a = await funded(1);
    const claimed = await processingRun(a, 'w-beat-default', { leaseSeconds: 10 });
    await worker.mutation(api.heartbeat, { id: claimed._id, workerId: 'w-beat-default' });
    const after = await getRun(a, claimed._id);
    assert.ok(after.leaseExpiresAt > claimed.leaseExpiresAt, 'extended');
    assert.ok(after.leaseExpiresAt >= Date.now() + 250_000, 'to about 300 s from now');
    assert.ok(after.leaseExpiresAt <= Date.now() + 300_000 + 1);
  });

  test('runs:complete makes a processing run completed with output and finishedAt, and keeps the charge', async () => {
    const a = await funded(1);
    const claimed = await processingRun(a, 'w-done');
    const output = 'https://cdn.example/runs/fox.png';
    assert.equal(await worker.mutation(api.complete, { id: claimed._id, workerId: 'w-done', output }), null);
    const run = await getRun(a, claimed._id);
    assert.equal(run.status, 'completed');
    assert.equal(run.output, output);
    assert.equal(typeof run.finishedAt, 'number');
    assert.ok(run.finishedAt >= run.startedAt);
    assert.equal(run.error, undefined);
    assert.equal(await credits(a), 0);
    assert.deepEqual(
      (await allPages(a.client, api.transactions)).rows.map((t) => t.kind),
      ['run', 'grant'],
    );
  });

  test('runs:fail makes a processing run failed with error and finishedAt, refunded in the same transaction', async () => {
    const a = await funded(1);
    const claimed = await processingRun(a, 'w-fail');
    assert.equal(await credits(a), 0);
    const error = 'model timed out after 120 s';
    assert.equal(await worker.mutation(api.fail, { id: claimed._id, workerId: 'w-fail', error }), null);
    const run = await getRun(a, claimed._id);
    assert.equal(run.status, 'failed');
    assert.equal(run.error, error);
    assert.equal(typeof run.finishedAt, 'number');
    assert.equal(run.output, undefined);
    assert.equal(await credits(a), 1);
    const [refund] = (await allPages(a.client, api.transactions)).rows;
    assert.deepEqual([refund.kind, refund.amount, refund.balanceAfter, refund.runId], ['refund', 1, 1, claimed._id]);
    assert.equal(refund.actor, 'admin', 'the worker called with the admin key');
  });

  test('a worker that does not hold the run gets INVALID_TRANSITION from heartbeat, complete and fail, and nothing changes', async () => {
    const a = await funded(1);
    const claimed = await processingRun(a, 'w-holder');
    const before = await snapshot(a.client);
    const id = claimed._id;
    await rejectsWith(
      worker.mutation(api.heartbeat, { id, workerId: 'w-other', leaseSeconds: 3600 }),
      INVALID_TRANSITION,
    );
    await rejectsWith(
      worker.mutation(api.complete, { id, workerId: 'w-other', output: 'https://x/y.png' }),
      INVALID_TRANSITION,
    );
    await rejectsWith(worker.mutation(api.fail, { id, workerId: 'w-other', error: 'nope' }), INVALID_TRANSITION);
    assert.deepEqual(await snapshot(a.client), before);
  });

  test('heartbeat, complete and fail of a missing run are NOT_FOUND "Run not found"', async () => {
    const id = unusedId(TABLE.runs);
    await rejectsWith(worker.mutation(api.heartbeat, { id, workerId: 'w' }), RUN_NOT_FOUND);
    await rejectsWith(worker.mutation(api.complete, { id, workerId: 'w', output: 'https://x/y.png' }), RUN_NOT_FOUND);
    await rejectsWith(worker.mutation(api.fail, { id, workerId: 'w', error: 'e' }), RUN_NOT_FOUND);
  });

  test('every other transition is INVALID_TRANSITION and changes nothing', async () => {
    const a = await funded(10);
    const queued = await a.client.mutation(api.createRun, { input: input() });
    const cancelled = await a.client.mutation(api.createRun, { input: input() });
    await a.client.mutation(api.cancelRun, { id: cancelled });
    const completed = (await processingRun(a, 'w-t'))._id;
    await worker.mutation(api.complete, { id: completed, workerId: 'w-t', output: 'https://cdn.example/t.png' });
    const failed = (await processingRun(a, 'w-t'))._id;
    await worker.mutation(api.fail, { id: failed, workerId: 'w-t', error: 'boom' });
    // A queued run's workerId is nobody's, so even the last holder is refused.
    const w = 'w-t';
    const cases = [
      ['complete a queued run', api.complete, { id: queued, workerId: w, output: 'https://x/q.png' }],
      ['fail a queued run', api.fail, { id: queued, workerId: w, error: 'e' }],
      ['heartbeat a queued run', api.heartbeat, { id: queued, workerId: w }],
      [
        'complete a completed run (complete twice)',
        api.complete,
        { id: completed, workerId: w, output: 'https://x/2.png' },
      ],
      ['fail a completed run', api.fail, { id: completed, workerId: w, error: 'late' }],
      ['heartbeat a completed run', api.heartbeat, { id: completed, workerId: w, leaseSeconds: 60 }],
      ['complete a failed run', api.complete, { id: failed, workerId: w, output: 'https://x/f.png' }],
      ['fail a failed run (fail twice)', api.fail, { id: failed, workerId: w, error: 'again' }],
      ['heartbeat a failed run', api.heartbeat, { id: failed, workerId: w }],
      ['complete a cancelled run', api.complete, { id: cancelled, workerId: w, output: 'https://x/c.png' }],
      ['fail a cancelled run', api.fail, { id: cancelled, workerId: w, error: 'again' }],
    ];
    const before = await snapshot(a.client);
    for (const [what, fn, args] of cases) {
      await assert.doesNotReject(rejectsWith(worker.mutation(fn, args), INVALID_TRANSITION), what);
    }
    assert.deepEqual(await snapshot(a.client), before);
  });

  test('leaseSeconds outside 1–3600 is refused naming leaseSeconds, and nothing is claimed', async () => {
    const a = await funded(2);
    const held = await processingRun(a, 'w-lease', { leaseSeconds: 60 });
    const queued = await a.client.mutation(api.createRun, { input: input() });
    const before = await snapshot(a.client);
    for (const leaseSeconds of [0, 3601, -1, 1.5]) {
      await rejectsWith(
        worker.mutation(api.claim, { workerId: 'w-lease', leaseSeconds }),
        invalidArgument('leaseSeconds'),
      );
      await rejectsWith(
        worker.mutation(api.heartbeat, { id: held._id, workerId: 'w-lease', leaseSeconds }),
        invalidArgument('leaseSeconds'),
      );
    }
    assert.deepEqual(await snapshot(a.client), before);
    assert.equal((await getRun(a, queued)).status, 'queued');
    // The bounds themselves are accepted.
    const one = await worker.mutation(api.claim, { workerId: 'w-lease', leaseSeconds: 3600 });
    assert.equal(one._id, queued);
    await worker.mutation(api.heartbeat, { id: queued, workerId: 'w-lease', leaseSeconds: 1 });
    await worker.mutation(api.complete, { id: queued, workerId: 'w-lease', output: 'https://x/l.png' });
  });

  test('worker arguments are validated naming the field', async () => {
    const a = await funded(1);
    const held = await processingRun(a, 'w-args');
    const id = held._id;
    const before = await snapshot(a.client);
    await rejectsWith(worker.mutation(api.claim, {}), invalidArgument('workerId'));
    await rejectsWith(worker.mutation(api.claim, { workerId: 'w', extra: 1 }), invalidArgument('extra'));
    await rejectsWith(worker.mutation(api.complete, { id, workerId: 'w-args' }), invalidArgument('output'));
    await rejectsWith(worker.mutation(api.fail, { id, workerId: 'w-args' }), invalidArgument('error'));
    await rejectsWith(worker.mutation(api.heartbeat, { id }), invalidArgument('workerId'));
    await rejectsWith(
      worker.mutation(api.complete, { id: a.user._id, workerId: 'w-args', output: 'o' }),
      invalidArgument('id'),
    );
    assert.deepEqual(await snapshot(a.client), before);
  });

  test('4 concurrent workers over 30 runs: each run is claimed exactly once and all 30 complete', async () => {
    await drainQueue();
    const a = await funded(30);
    const ids = [];
    for (let i = 0; i < 30; i++)
      ids.push(await a.client.mutation(api.createRun, { input: input('flux', `batch ${i}`) }));

    // The owner watches the completed runs arrive over the WebSocket.
    const ws = new ConvexClient(dojo.url, {
      webSocketConstructor: WebSocket,
      logger: false,
      unsavedChangesWarning: false,
    });
    await new Promise((resolve) =>
      ws.setAuth(
        async () => a.token,
        (ok) => ok && resolve(),
      ),
    );
    let completedPage;
    const unsubscribe = ws.onUpdate(api.listRuns, { status: 'completed', ...page(100) }, (v) => (completedPage = v));

    const claims = new Map(); // run id -> [workerId, ...]
    const workers = Array.from({ length: 4 }, (_, n) => ({ name: `worker-${n}`, client: adminClient(dojo) }));
    await Promise.all(
      workers.map(async ({ name, client }) => {
        for (let i = 0; i < 100; i++) {
          const run = await client.mutation(api.claim, { workerId: name, leaseSeconds: 120 });
          if (run === null) return;
          assert.equal(run.workerId, name);
          claims.set(run._id, [...(claims.get(run._id) ?? []), name]);
          await client.mutation(api.complete, {
            id: run._id,
            workerId: name,
            output: `https://cdn.example/${run._id}.png`,
          });
        }
      }),
    );
    try {
      assert.equal(claims.size, 30);
      assert.deepEqual([...claims.keys()].sort(), [...ids].sort());
      for (const [id, by] of claims) assert.equal(by.length, 1, `${id} claimed by ${by.join(', ')}`);
      const used = new Set([...claims.values()].flat());
      assert.ok(used.size >= 2, `the work was shared (${[...used].join(', ')})`);
      for (const id of ids) {
        const run = await getRun(a, id);
        assert.equal(run.status, 'completed');
        assert.equal(run.attempts, 1);
        assert.equal(run.workerId, claims.get(id)[0]);
        assert.equal(run.output, `https://cdn.example/${id}.png`);
      }
      await waitFor(() => completedPage?.page.length === 30, { what: '30 completed runs pushed' });
      assert.equal(await credits(a), 0);
      assert.equal((await allPages(a.client, api.transactions)).rows.filter((t) => t.kind === 'refund').length, 0);
    } finally {
      unsubscribe();
      await ws.close();
    }
  });
});

describe('leases', () => {
  /** Polls runs:get until pred holds; returns that run. Timings are not
   *  asserted: "about a second" of slack becomes a deadline of several. */
  const runWhen = (u, id, pred, what) =>
    waitFor(
      async () => {
        const run = await getRun(u, id);
        return pred(run) ? run : null;
      },
      { timeoutMs: 8_000, intervalMs: 50, what },
    );

  test('a claimed run whose worker vanishes is queued again after its lease expires, and the next claim gets it', async () => {
    await drainQueue();
    const a = await funded(2);
    const first = await a.client.mutation(api.createRun, { input: input() });
    const second = await a.client.mutation(api.createRun, { input: input() });
    const claimed = await worker.mutation(api.claim, { workerId: 'w-vanished', leaseSeconds: 1 });
    assert.equal(claimed._id, first);

    const requeued = await runWhen(a, first, (r) => r.status === 'queued', 'the run queued again');
    assert.ok(Date.now() >= claimed.leaseExpiresAt - 50, 'not before the lease expired');
    assert.equal(requeued.attempts, 1);
    assert.equal(requeued.workerId, undefined);
    assert.equal(requeued.leaseExpiresAt, undefined);
    assert.equal(requeued.finishedAt, undefined);
    assert.equal(await credits(a), 0, 'still charged: it will run');

    // The vanished worker can no longer finish it.
    await rejectsWith(
      worker.mutation(api.complete, { id: first, workerId: 'w-vanished', output: 'https://x/late.png' }),
      INVALID_TRANSITION,
    );
    // It is still the oldest queued run.
    const again = await worker.mutation(api.claim, { workerId: 'w-second', leaseSeconds: 60 });
    assert.equal(again._id, first);
    assert.equal(again.attempts, 2);
    await rejectsWith(
      worker.mutation(api.complete, { id: first, workerId: 'w-vanished', output: 'https://x/late.png' }),
      INVALID_TRANSITION,
    );
    await worker.mutation(api.complete, { id: first, workerId: 'w-second', output: 'https://x/ok.png' });
    assert.equal((await getRun(a, second)).status, 'queued');
  });

  test('heartbeats keep a short lease alive', async () => {
    await drainQueue();
    const a = await funded(1);
    const id = await a.client.mutation(api.createRun, { input: input() });
    const claimed = await worker.mutation(api.claim, { workerId: 'w-alive', leaseSeconds: 1 });
    assert.equal(claimed._id, id);
    const until = claimed.leaseExpiresAt + 1_500;
    while (Date.now() < until) {
      await worker.mutation(api.heartbeat, { id, workerId: 'w-alive', leaseSeconds: 2 });
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const run = await getRun(a, id);
    assert.equal(run.status, 'processing', 'still held past the first lease');
    assert.equal(run.workerId, 'w-alive');
    assert.equal(run.attempts, 1);
    await worker.mutation(api.complete, { id, workerId: 'w-alive', output: 'https://x/alive.png' });
  });

  test('by default (MAX_ATTEMPTS 3) a run is claimed three times before its lease expiry fails it', async () => {
    await drainQueue();
    const a = await funded(1);
    const id = await a.client.mutation(api.createRun, { input: input() });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const claimed = await worker.mutation(api.claim, { workerId: `w-${attempt}`, leaseSeconds: 1 });
      assert.deepEqual([claimed?._id, claimed?.attempts], [id, attempt]);
      const next = attempt < 3 ? 'queued' : 'failed';
      await runWhen(a, id, (r) => r.status === next, `${next} after lease ${attempt}`);
    }
    const run = await getRun(a, id);
    assert.deepEqual([run.error, run.attempts], ['Lease expired', 3]);
    assert.equal(await credits(a), 1);
  });

  test('after MAX_ATTEMPTS expired leases the run fails with "Lease expired" and is refunded', async () => {
    await drainQueue();
    const a = await funded(1);
    await withEnv({ MAX_ATTEMPTS: '2' }, async () => {
      const id = await a.client.mutation(api.createRun, { input: input() });
      assert.equal(await credits(a), 0);

      const first = await worker.mutation(api.claim, { workerId: 'w-1', leaseSeconds: 1 });
      assert.deepEqual([first._id, first.attempts], [id, 1]);
      await runWhen(a, id, (r) => r.status === 'queued', 'queued after the first lease');

      const second = await worker.mutation(api.claim, { workerId: 'w-2', leaseSeconds: 1 });
      assert.deepEqual([second._id, second.attempts], [id, 2]);
      const failed = await runWhen(a, id, (r) => r.status === 'failed', 'failed after the second lease');
      assert.equal(failed.error, 'Lease expired');
      assert.equal(failed.attempts, 2);
      assert.equal(typeof failed.finishedAt, 'number');
      assert.equal(failed.leaseExpiresAt, undefined);

      assert.equal(await credits(a), 1);
      const [refund] = (await allPages(a.client, api.transactions)).rows;
      assert.deepEqual([refund.kind, refund.amount, refund.balanceAfter, refund.runId], ['refund', 1, 1, id]);
      assert.equal(refund.actor, 'system', 'nobody called: the system refunded it');
      assert.equal(await worker.mutation(api.claim, { workerId: 'w-3' }), null, 'a failed run is not queued');
      await rejectsWith(
        worker.mutation(api.complete, { id, workerId: 'w-2', output: 'https://x/late.png' }),
        INVALID_TRANSITION,
      );
    });
  });
});
