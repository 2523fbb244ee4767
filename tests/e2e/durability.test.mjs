// durability.test.mjs — a crash loses no committed write: a server killed
// with SIGKILL while users create workflows and admins grant credits is
// restarted on the same database, and every write that was acknowledged is
// there; the ledger invariants hold (admin:verifyLedger and `dojo verify`
// after the test). Then the write path of runs:create (a debit, a ledger
// row and a run per call, many calls per commit) is killed at random
// moments of its load, round after round on the same database: every
// acknowledged run is there, each run is charged exactly once, and `dojo
// verify` is clean after each restart. Runs on SQLite and, as
// e2e-pg.durability, on PostgreSQL.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { checkAfterEach, makeFunctionReference as ref, startDojo, waitFor } from './lib/dojo.mjs';
import { newSubject, startIssuer } from './lib/issuer.mjs';

const api = {
  createRun: ref('runs:create'),
  getRun: ref('runs:get'),
  listRuns: ref('runs:list'),
  getOrCreate: ref('users:getOrCreate'),
  me: ref('users:me'),
  createWorkflow: ref('workflows:create'),
  getWorkflow: ref('workflows:get'),
};
const USERS = 8;
const ACKED_BEFORE_KILL = 150;

let issuer;
const servers = [];

before(async () => {
  issuer = await startIssuer();
});
checkAfterEach(() => servers);
after(() => issuer?.close());

test('every acknowledged write survives a SIGKILL in the middle of the load', async () => {
  const first = await startDojo({ issuer });
  const users = [];
  for (let i = 0; i < USERS; i++) {
    const token = await issuer.token({ sub: newSubject() }, { expiresIn: 600 });
    const client = first.httpClient(token);
    users.push({ token, client, user: await client.mutation(api.getOrCreate, {}), granted: 0, workflows: [] });
  }
  let acked = 0;
  let stop = false;
  const load = users.map(async (u, n) => {
    for (let i = 0; !stop; i++) {
      try {
        u.workflows.push(await u.client.mutation(api.createWorkflow, { title: `w${n}-${i}` }));
        acked++;
        await first.adminCall('admin:grantCredits', { userId: u.user._id, amount: 1 });
        u.granted++;
        acked++;
      } catch {
        return; // the server is gone: whatever was not acknowledged may or may not be there
      }
    }
  });
  await waitFor(() => acked >= ACKED_BEFORE_KILL, { timeoutMs: 60_000, what: `${ACKED_BEFORE_KILL} acknowledged writes` });
  first.proc.child.kill('SIGKILL');
  stop = true;
  await Promise.all(load);
  await first.proc.exitPromise;
  assert.equal(first.proc.exited.signal, 'SIGKILL');

  const second = await startDojo({ issuer, dbUrl: first.dbUrl, dir: first.dir });
  servers.push(second);
  for (const u of users) {
    const client = second.httpClient(u.token);
    const me = await client.query(api.me, {});
    assert.ok(me.credits >= u.granted, `user ${u.user._id}: ${me.credits} credits, ${u.granted} grants acknowledged`);
    assert.ok(me.credits <= u.granted + 1, 'at most the one grant in flight at the kill');
    for (const id of u.workflows) assert.ok(await client.query(api.getWorkflow, { id }), `workflow ${id} was acknowledged`);
  }
});

test('runs:create killed at random moments of its load, round after round: every acknowledged run is there, charged once', async () => {
  const ROUNDS = 12;
  const SIGNUP = 1_000_000;
  const env = { SIGNUP_CREDITS: String(SIGNUP), PRICING: '{"default":1}' };
  const seed = Number(process.env.DOJO_TEST_SEED ?? Date.now() % 1_000_000);
  let state = seed;
  const random = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);
  let server = await startDojo({ issuer, env });
  const { dir, dbUrl } = server;
  const slot = servers.length;
  servers.push(server);
  const users = [];
  for (let i = 0; i < USERS; i++) {
    const token = await issuer.token({ sub: newSubject() }, { expiresIn: 600 });
    const user = await server.httpClient(token).mutation(api.getOrCreate, {});
    users.push({ token, user, acked: new Set() });
  }
  for (let round = 0; round < ROUNDS; round++) {
    let stop = false;
    let acked = 0;
    const load = users.map(async (u) => {
      const client = server.httpClient(u.token);
      while (!stop) {
        try {
          u.acked.add(await client.mutation(api.createRun, { input: { model: 'flux', prompt: `round ${round}` } }));
          acked++;
        } catch {
          return; // the server is gone: an unacknowledged run may or may not be there
        }
      }
    });
    // A random moment: after some acknowledged runs, then a random pause.
    await waitFor(() => acked >= 5 + Math.floor(random() * 40), { timeoutMs: 60_000, what: 'acknowledged runs' });
    await new Promise((r) => setTimeout(r, Math.floor(random() * 50)));
    servers[slot] = null;
    server.proc.child.kill('SIGKILL');
    stop = true;
    await Promise.all(load);
    await server.proc.exitPromise;
    assert.equal(server.proc.exited.signal, 'SIGKILL');

    server = await startDojo({ issuer, env, dbUrl, dir });
    servers[slot] = server; /* the killed one is not the file's to stop */
    for (const u of users) {
      const client = server.httpClient(u.token);
      const runs = (await allRuns(client)).map((r) => r._id);
      const have = new Set(runs);
      for (const id of u.acked) assert.ok(have.has(id), `seed ${seed}, round ${round}: acknowledged run ${id} is lost`);
      assert.ok(runs.length <= u.acked.size + 1, `seed ${seed}, round ${round}: at most the one run in flight at the kill`);
      for (const id of runs) u.acked.add(id); // one in flight may have committed
      const me = await client.query(api.me, {});
      assert.equal(me.credits, SIGNUP - runs.length, `seed ${seed}, round ${round}: each run charged once`);
    }
    const ledger = await server.adminCall('admin:verifyLedger', {});
    assert.equal(ledger.ok, true, `seed ${seed}, round ${round}: ${JSON.stringify(ledger)}`);
  }
  await server.stop();
  await server.verifyDb();
});

async function allRuns(client) {
  const rows = [];
  let cursor = null;
  for (;;) {
    const page = await client.query(api.listRuns, { paginationOpts: { numItems: 200, cursor } });
    rows.push(...page.page);
    if (page.isDone) return rows;
    cursor = page.continueCursor;
  }
}
