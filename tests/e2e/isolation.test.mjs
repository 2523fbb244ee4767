// isolation.test.mjs — what one user can do to another (api.md §3: rows are
// visible to their owner only; a foreign id is answered like a missing one;
// internal functions refuse user tokens). Two table-driven tests: every
// public function called by someone else with user A's ids and cursors leaks
// nothing and changes nothing of A's; every admin function called with a user
// token is FORBIDDEN and changes nothing.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ConvexClient } from 'convex/browser';
import WebSocket from 'ws';

import { checkAfterEach, startDojo } from './lib/dojo.mjs';
import { startIssuer } from './lib/issuer.mjs';
import { adminClient, allPages, api, input, signUp, snapshot } from './lib/app.mjs';

let issuer;
let dojo;

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer, env: { SIGNUP_CREDITS: '10', PRICING: null } });
});
checkAfterEach(() => dojo);
after(() => issuer?.close());

const NO_IDENTITY = { code: 'UNAUTHENTICATED', message: 'No identity found' };
const WORKFLOW_NOT_FOUND = { code: 'NOT_FOUND', message: 'Workflow not found' };
const RUN_NOT_FOUND = { code: 'NOT_FOUND', message: 'Run not found' };
const USER_NOT_FOUND = { code: 'NOT_FOUND', message: 'User not found — call users:getOrCreate first' };
const INVALID_CURSOR = { code: 'INVALID_ARGUMENT', message: /InvalidCursor/ };
const page = (numItems, cursor = null, extra = {}) => ({ paginationOpts: { numItems, cursor, ...extra } });

/** User A with something in every state: two workflows, a queued, a
 *  processing, a completed, a failed and a cancelled run, a ledger of several
 *  rows, and a continue cursor of each of A's lists. */
async function userWithEverything() {
  const a = await signUp(dojo, issuer, { name: 'Ada Owner' });
  const worker = adminClient(dojo);
  // Empty the queue so the claims below take A's runs.
  for (let run; (run = await worker.mutation(api.claim, { workerId: 'drain' }));) {
    await worker.mutation(api.complete, { id: run._id, workerId: 'drain', output: 'https://x/drained.png' });
  }
  const { nodes, edges } = { nodes: [{ id: 'n1', data: { prompt: 'secret prompt' } }], edges: [] };
  const wf = await a.client.mutation(api.createWorkflow, { title: "A's secret graph", nodes, edges });
  const wf2 = await a.client.mutation(api.createWorkflow, { title: "A's other graph" });
  const create = (workflowId) =>
    a.client.mutation(api.createRun, { input: input('flux', 'secret'), ...(workflowId ? { workflowId } : {}) });
  const completed = await create(wf);
  const failed = await create(wf);
  const processing = await create(wf);
  const cancelled = await create(wf2);
  const queued = await create(wf);
  await create(wf);
  for (const [runId, end] of [
    [completed, (id) => worker.mutation(api.complete, { id, workerId: 'w-a', output: 'https://x/a.png' })],
    [failed, (id) => worker.mutation(api.fail, { id, workerId: 'w-a', error: 'boom' })],
    [processing, null],
  ]) {
    const claimed = await worker.mutation(api.claim, { workerId: 'w-a', leaseSeconds: 3600 });
    assert.equal(claimed._id, runId);
    if (end) await end(runId);
  }
  await a.client.mutation(api.cancelRun, { id: cancelled });
  const runIds = { queued, processing, completed, failed, cancelled };
  const cursors = {
    runs: (await a.client.query(api.listRuns, page(1))).continueCursor,
    runsByWorkflow: (await a.client.query(api.listRuns, { ...page(1), workflowId: wf })).continueCursor,
    runsByStatus: (await a.client.query(api.listRuns, { ...page(1), status: 'queued' })).continueCursor,
    transactions: (await a.client.query(api.transactions, page(1))).continueCursor,
  };
  // A cursor forged to point into A's rows: the shape of a real one, A's user id.
  const forged = Buffer.from(JSON.stringify([a.user._id, 1e300, 'zzzzzzzzzzzzzzzzzzzzzzzzzzzz'])).toString('base64url');
  return { ...a, wf, wf2, runIds, cursors, forged };
}

/** Every id and name of A's, which no answer to anyone else may contain. */
async function secretsOf(a) {
  const s = await snapshot(a.client);
  return [
    a.user._id,
    a.tokenIdentifier,
    a.email,
    'Ada Owner',
    'secret',
    ...s.workflows.map((w) => w._id),
    ...s.runs.map((r) => r._id),
    ...s.transactions.map((t) => t._id),
  ];
}

test("every public function called by another user with A's ids and cursors leaks nothing and changes nothing of A's", async () => {
  const a = await userWithEverything();
  const b = await signUp(dojo, issuer); // a user of their own, with a ledger
  await b.client.mutation(api.createRun, { input: input() });
  const noUser = await signUp(dojo, issuer, { create: false }); // an identity, no user yet
  const anonymous = { client: dojo.httpClient() };
  const callers = { user: b, noUser, anonymous };

  const NULL = { value: null };
  const EMPTY = { emptyPage: true };
  const notA = { ok: true }; // any answer, as long as it holds nothing of A's
  // What each caller must get: the anonymous caller is refused by every auth function.
  const exp = (user, noUser, anonymous = NO_IDENTITY) => ({ user, noUser, anonymous });
  // [name, call(client), exp(for user B, for the identity without a user, for no identity)]
  const cases = [
    ['users:me', (c) => c.query(api.me, {}), exp(notA, NULL, NULL)],
    ['workflows:get', (c) => c.query(api.getWorkflow, { id: a.wf }), exp(NULL, NULL)],
    ['workflows:list', (c) => c.query(api.listWorkflows, {}), exp(notA, notA)],
    [
      'workflows:update',
      (c) => c.mutation(api.updateWorkflow, { id: a.wf, title: 'pwned', nodes: [] }),
      exp(WORKFLOW_NOT_FOUND, WORKFLOW_NOT_FOUND),
    ],
    [
      'workflows:remove',
      (c) => c.mutation(api.removeWorkflow, { id: a.wf2 }),
      exp(WORKFLOW_NOT_FOUND, WORKFLOW_NOT_FOUND),
    ],
    ['workflows:create', (c) => c.mutation(api.createWorkflow, { title: 'mine' }), exp(notA, notA)],
    [
      "runs:create on A's workflow",
      (c) => c.mutation(api.createRun, { input: input(), workflowId: a.wf }),
      exp(WORKFLOW_NOT_FOUND, USER_NOT_FOUND),
    ],
    ...Object.entries(a.runIds).flatMap(([state, id]) => [
      [`runs:get of A's ${state} run`, (c) => c.query(api.getRun, { id }), exp(NULL, NULL)],
      [`runs:cancel of A's ${state} run`, (c) => c.mutation(api.cancelRun, { id }), exp(RUN_NOT_FOUND, RUN_NOT_FOUND)],
    ]),
    ['runs:list', (c) => c.query(api.listRuns, page(100)), exp(notA, EMPTY)],
    ["runs:list of A's workflow", (c) => c.query(api.listRuns, { ...page(100), workflowId: a.wf }), exp(EMPTY, EMPTY)],
    [
      "runs:list of A's workflow, queued",
      (c) => c.query(api.listRuns, { ...page(100), workflowId: a.wf, status: 'queued' }),
      exp(EMPTY, EMPTY),
    ],
    ["runs:list from A's cursor", (c) => c.query(api.listRuns, page(100, a.cursors.runs)), exp(INVALID_CURSOR, EMPTY)],
    [
      "runs:list up to A's cursor",
      (c) => c.query(api.listRuns, page(100, null, { endCursor: a.cursors.runs })),
      exp(INVALID_CURSOR, EMPTY),
    ],
    [
      "runs:list of A's workflow from A's cursor",
      (c) => c.query(api.listRuns, { ...page(100, a.cursors.runsByWorkflow), workflowId: a.wf }),
      exp(INVALID_CURSOR, EMPTY),
    ],
    [
      "runs:list queued from A's cursor",
      (c) => c.query(api.listRuns, { ...page(100, a.cursors.runsByStatus), status: 'queued' }),
      exp(INVALID_CURSOR, EMPTY),
    ],
    [
      "runs:list from a cursor forged with A's user id",
      (c) => c.query(api.listRuns, page(100, a.forged)),
      exp(INVALID_CURSOR, EMPTY),
    ],
    ['transactions:list', (c) => c.query(api.transactions, page(100)), exp(notA, EMPTY)],
    [
      "transactions:list from A's cursor",
      (c) => c.query(api.transactions, page(100, a.cursors.transactions)),
      exp(INVALID_CURSOR, EMPTY),
    ],
    [
      "transactions:list up to A's cursor",
      (c) => c.query(api.transactions, page(100, null, { endCursor: a.cursors.transactions })),
      exp(INVALID_CURSOR, EMPTY),
    ],
    [
      "transactions:list from a cursor forged with A's user id",
      (c) => c.query(api.transactions, page(100, a.forged)),
      exp(INVALID_CURSOR, EMPTY),
    ],
    // Last: it gives the identity without a user a user of its own.
    ['users:getOrCreate', (c) => c.mutation(api.getOrCreate, {}), exp(notA, notA)],
  ];

  const secrets = await secretsOf(a);
  const before = await snapshot(a.client);
  const failures = [];
  for (const [name, call, expected] of cases) {
    for (const [who, caller] of Object.entries(callers)) {
      const want = expected[who];
      const what = `${name} by ${who}`;
      try {
        let value;
        let error;
        try {
          value = await call(caller.client);
        } catch (err) {
          error = err;
        }
        if (want.code) {
          assert.ok(error, `${what}: expected ${want.code}, got ${JSON.stringify(value)}`);
          assert.equal(error.data?.code, want.code, `${what}: ${error.message}`);
          if (typeof want.message === 'string') assert.equal(error.message, want.message, what);
          else assert.match(error.message, want.message, what);
          for (const s of secrets) assert.ok(!error.message.includes(s), `${what}: the error names ${s}`);
          continue;
        }
        assert.equal(error, undefined, `${what}: ${error?.message} ${JSON.stringify(error?.data)}`);
        const text = JSON.stringify(value) ?? 'undefined';
        for (const s of secrets) assert.ok(!text.includes(s), `${what} leaked ${s}: ${text}`);
        if ('value' in want) assert.deepEqual(value, want.value, what);
        if (want.emptyPage) {
          assert.deepEqual(value.page, [], what);
          assert.equal(value.isDone, true, what);
        }
      } catch (err) {
        failures.push(err.message);
      }
    }
  }
  assert.deepEqual(failures, []);
  assert.deepEqual(await snapshot(a.client), before, "nothing of A's changed");
});

test('every admin function called with a user token is FORBIDDEN and changes nothing', async () => {
  const a = await userWithEverything();
  const b = await signUp(dojo, issuer);
  const { queued, processing } = a.runIds;
  const ws = new ConvexClient(dojo.url, {
    webSocketConstructor: WebSocket,
    logger: false,
    unsavedChangesWarning: false,
  });
  await new Promise((resolve) =>
    ws.setAuth(
      async () => b.token,
      (ok) => ok && resolve(),
    ),
  );
  const callers = {
    'the owner (HTTP)': a.client,
    'another user (HTTP)': b.client,
    'another user (WebSocket)': ws,
  };
  const cases = [
    ['runs:claim', (c) => c.mutation(api.claim, { workerId: 'w-a', leaseSeconds: 60 })],
    ['runs:heartbeat', (c) => c.mutation(api.heartbeat, { id: processing, workerId: 'w-a', leaseSeconds: 3600 })],
    ['runs:complete', (c) => c.mutation(api.complete, { id: processing, workerId: 'w-a', output: 'https://x/p.png' })],
    ['runs:fail', (c) => c.mutation(api.fail, { id: processing, workerId: 'w-a', error: 'stop' })],
    ['runs:complete of a queued run', (c) => c.mutation(api.complete, { id: queued, workerId: 'w-a', output: 'o' })],
    ['admin:grantCredits by userId', (c) => c.mutation(api.grantCredits, { userId: a.user._id, amount: 1000 })],
    [
      'admin:grantCredits by tokenIdentifier',
      (c) => c.mutation(api.grantCredits, { tokenIdentifier: a.tokenIdentifier, amount: 1000 }),
    ],
    ['admin:grantCredits by email', (c) => c.mutation(api.grantCredits, { email: a.email, amount: 1000 })],
    ['admin:verifyLedger', (c) => c.query(api.verifyLedger, {})],
  ];
  const beforeA = await snapshot(a.client);
  const beforeB = await snapshot(b.client);
  const usersBefore = (await dojo.adminCall('admin:verifyLedger', {})).usersChecked;
  const failures = [];
  try {
    for (const [name, call] of cases) {
      for (const [who, client] of Object.entries(callers)) {
        try {
          await assert.rejects(call(client), (err) => {
            assert.equal(err.data?.code, 'FORBIDDEN', `${err.message} ${JSON.stringify(err.data)}`);
            return true;
          });
        } catch (err) {
          failures.push(`${name} by ${who}: ${err.message}`);
        }
      }
    }
  } finally {
    await ws.close();
  }
  assert.deepEqual(failures, []);
  assert.deepEqual(await snapshot(a.client), beforeA, "nothing of A's changed");
  assert.deepEqual(await snapshot(b.client), beforeB, "nothing of B's changed");
  assert.equal((await dojo.adminCall('admin:verifyLedger', {})).usersChecked, usersBefore);
  // The queue is as it was: the admin's claim still gets A's queued run.
  const claimed = await dojo.adminCall('runs:claim', { workerId: 'w-admin' });
  assert.equal(claimed._id, queued);
  assert.equal(claimed.attempts, 1);
  assert.equal((await allPages(a.client, api.listRuns, { status: 'processing' })).rows.length, 2);
});
