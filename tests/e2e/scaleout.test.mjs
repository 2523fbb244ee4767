// scaleout.test.mjs — two `dojo serve` processes on one PostgreSQL database
// (ARCHITECTURE "Scale-out"): a client of node A hears about commits made
// through node B (grants, new runs, deployment variables), a write through
// one node is read through the other at once, credits cannot be
// overspent by racing both nodes, and a node that loses its notification
// connection catches up once it listens again.
//
// Needs DOJO_TEST_PG_URL (scripts/test.sh starts a throwaway cluster with
// scripts/pg.sh); skipped without it. The suite gets a schema of its own,
// dropped at the end, so it shares the cluster with other suites.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ConvexClient } from 'convex/browser';
import WebSocket from 'ws';

import { checkAfterEach, makeFunctionReference as ref, startDojo, waitFor } from './lib/dojo.mjs';
import { newSubject, startIssuer } from './lib/issuer.mjs';
import { setFieldSql } from './lib/stored_doc.mjs';

const PG_URL = process.env.DOJO_TEST_PG_URL;
const SIGNUP_CREDITS = 10;
const TOKEN_LIFETIME_S = 600;
const CONVERGE_MS = 15_000; // the sanitizer build is slow

const api = {
  me: ref('users:me'),
  getOrCreate: ref('users:getOrCreate'),
  createRun: ref('runs:create'),
  listRuns: ref('runs:list'),
  createWorkflow: ref('workflows:create'),
  getWorkflow: ref('workflows:get'),
  transactions: ref('transactions:list'),
};

/** Runs SQL on the test cluster with psql; returns its output. */
function psql(sql, url = PG_URL) {
  return execFileSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], {
    encoding: 'utf8',
    env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
  });
}

/** The notification channel of the deployment in schema (store/postgres.c):
 *  dojo_commits_ and the FNV-1a (64-bit) of the schema name in hex. */
function channelOf(schema) {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(schema)) h = ((h ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return `dojo_commits_${h.toString(16).padStart(16, '0')}`;
}

/** url restricted to one schema, the way libpq reads URL options. */
function schemaUrl(url, schema) {
  return `${url}${url.includes('?') ? '&' : '?'}options=-csearch_path%3D${schema}`;
}

describe('several dojo serve processes on one PostgreSQL', { skip: !PG_URL && 'DOJO_TEST_PG_URL is not set' }, () => {
  const schema = `s_${randomBytes(6).toString('hex')}`;
  let issuer;
  let a;
  let b;
  checkAfterEach(() => [a, b]);

  before(async () => {
    psql(`CREATE SCHEMA ${schema}`);
    issuer = await startIssuer();
    const dbUrl = schemaUrl(PG_URL, schema);
    const env = { SIGNUP_CREDITS: String(SIGNUP_CREDITS), PRICING: '{"default":1}' };
    // One after the other: the second finds the schema made by the first.
    a = await startDojo({ issuer, dbUrl, env });
    b = await startDojo({ issuer, dbUrl, env });
  });
  after(async () => {
    // checkAfterEach's own after hook (registered first) stops the servers.
    await issuer?.close();
    psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  });

  function tokenFor(sub, who = issuer) {
    return who.token({ sub, email: `${sub}@example.com` }, { expiresIn: TOKEN_LIFETIME_S });
  }

  /** A new user, created through node; returns {sub, token, user}. */
  async function signUp(node) {
    const sub = newSubject();
    const token = await tokenFor(sub);
    const user = await node.httpClient(token).mutation(api.getOrCreate, {});
    return { sub, token, user };
  }

  /** A ConvexClient on node signed in with token. */
  async function syncClient(node, token) {
    const c = new ConvexClient(node.url, { webSocketConstructor: WebSocket, logger: false, unsavedChangesWarning: false });
    await new Promise((resolve) => c.setAuth(async () => token, (ok) => ok && resolve()));
    return c;
  }

  /** Collects every value a subscription delivers. */
  function watch(c, fn, args) {
    const values = [];
    const unsubscribe = c.onUpdate(fn, args, (v) => values.push(v));
    return { values, unsubscribe, latest: () => values[values.length - 1] };
  }

  test('a subscription on node A sees a grant made through node B', async () => {
    const u = await signUp(a);
    const c = await syncClient(a, u.token);
    const me = watch(c, api.me, {});
    await waitFor(() => me.latest()?.credits === SIGNUP_CREDITS, { what: 'the signup credits on A' });
    await b.adminCall('admin:grantCredits', { userId: u.user._id, amount: 7 });
    await waitFor(() => me.latest()?.credits === SIGNUP_CREDITS + 7, {
      timeoutMs: CONVERGE_MS,
      what: 'the grant made through B, on A',
    });
    await c.close();
  });

  test('runs:list on node A sees runs created through node B', async () => {
    const u = await signUp(b);
    const c = await syncClient(a, u.token);
    const list = watch(c, api.listRuns, { paginationOpts: { numItems: 20, cursor: null } });
    await waitFor(() => list.latest()?.page?.length === 0, { what: 'an empty list on A' });
    const onB = b.httpClient(u.token);
    const ids = [];
    for (let i = 0; i < 3; i++) {
      ids.push(await onB.mutation(api.createRun, { input: { model: 'flux', prompt: `fox ${i}` } }));
    }
    await waitFor(() => list.latest()?.page?.length === 3, { timeoutMs: CONVERGE_MS, what: 'three runs on A' });
    assert.deepEqual(list.latest().page.map((r) => r._id).sort(), [...ids].sort());
    await c.close();
  });

  test('a write through one node is read through the other at once (HTTP)', async () => {
    const u = await signUp(a);
    const nodes = [a, b];
    for (let i = 0; i < 20; i++) {
      const writer = nodes[i % 2].httpClient(u.token);
      const reader = nodes[(i + 1) % 2].httpClient(u.token);
      const id = await writer.mutation(api.createWorkflow, { title: `Workflow ${i}` });
      const read = await reader.query(api.getWorkflow, { id });
      assert.equal(read?.title, `Workflow ${i}`, `workflow ${i} written through one node, read through the other`);
    }
  });

  test('both nodes together never spend more credits than a user has', async () => {
    const u = await signUp(a);
    const clients = [a.httpClient(u.token), b.httpClient(u.token)];
    const CREATES = 50;
    const outcomes = await Promise.all(
      Array.from({ length: CREATES }, (_, i) =>
        clients[i % 2].mutation(api.createRun, { input: { model: 'flux', prompt: `race ${i}` } }, { skipQueue: true }).then(
          (id) => ({ id }),
          (err) => ({ err }),
        ),
      ),
    );
    const runs = outcomes.filter((o) => o.id);
    for (const o of outcomes.filter((x) => x.err)) assert.match(o.err.message, /Insufficient credits/);
    assert.equal(runs.length, SIGNUP_CREDITS, 'exactly as many runs as credits');
    for (const node of [a, b]) {
      const me = await node.httpClient(u.token).query(api.me, {});
      assert.equal(me.credits, 0, `no credits left, as node ${node.url} reads it`);
    }
  });

  test('each transition on node A shows credits and ledger of the same commit, whatever node wrote', async () => {
    const u = await signUp(b);
    const c = await syncClient(a, u.token);
    const page = { paginationOpts: { numItems: 5, cursor: null } };
    const ledger = watch(c, api.transactions, page);
    const seen = [];
    const me = c.onUpdate(api.me, {}, (user) => {
      // Called once the whole transition is applied: the ledger subscription
      // already holds the state of the same timestamp.
      const rows = ledger.unsubscribe.getCurrentValue?.() ?? ledger.latest();
      if (user && rows?.page?.length) seen.push([user.credits, rows.page[0].balanceAfter]);
    });
    await waitFor(() => seen.length > 0, { what: 'the first state on A' });
    // Both nodes at once: their commits interleave.
    const GRANTS = 24;
    await Promise.all(
      Array.from({ length: GRANTS }, (_, i) =>
        (i % 2 ? a : b).adminCall('admin:grantCredits', { userId: u.user._id, amount: 1 }),
      ),
    );
    const total = SIGNUP_CREDITS + GRANTS;
    await waitFor(() => seen.at(-1)?.[0] === total, { timeoutMs: CONVERGE_MS, what: 'every grant on A' });
    for (const [credits, balanceAfter] of seen) assert.equal(credits, balanceAfter, `a consistent state: ${JSON.stringify(seen)}`);
    me();
    await c.close();
  });

  test('a deployment variable set through node B takes effect for auth on node A', async () => {
    const other = await startIssuer();
    try {
      const sub = newSubject();
      const token = await tokenFor(sub, other);
      await assert.rejects(a.httpClient(token).mutation(api.getOrCreate, {}), 'A does not trust the other issuer yet');
      await b.adminCall('_system:envSet', { name: 'CLERK_ISSUER_URL', value: other.url });
      const user = await waitFor(
        () => a.httpClient(token).mutation(api.getOrCreate, {}).catch(() => null),
        { timeoutMs: CONVERGE_MS, intervalMs: 100, what: 'A trusting the issuer set through B' },
      );
      assert.equal(user.tokenIdentifier, `${other.url}|${sub}`);
      await b.adminCall('_system:envRemove', { name: 'CLERK_ISSUER_URL' });
      const back = await tokenFor(newSubject());
      await waitFor(() => a.httpClient(back).mutation(api.getOrCreate, {}).catch(() => null), {
        timeoutMs: CONVERGE_MS,
        intervalMs: 100,
        what: 'A trusting the first issuer again once B removed the variable',
      });
    } finally {
      await other.close();
    }
  });

  test('a commit from outside the servers (an import) reaches the subscriptions of both', async () => {
    const u = await signUp(a);
    const clients = [await syncClient(a, u.token), await syncClient(b, u.token)];
    const mes = clients.map((c) => watch(c, api.me, {}));
    for (const me of mes) await waitFor(() => me.latest()?.credits === SIGNUP_CREDITS, { what: 'the user' });
    // What a tool writing outside the servers does (dojo import): write,
    // move the commit clock on, and commit; the store's empty notification
    // is all the servers hear of it.
    const rename = await setFieldSql({
      run: psql,
      postgres: true,
      table: `${schema}.users`,
      id: u.user._id,
      field: 'name',
      value: 'Renamed outside',
    });
    psql(
      `BEGIN;
       ${rename};
       UPDATE ${schema}._dojo_meta SET value = (value::numeric + 1)::text WHERE key = 'ts';
       SELECT pg_notify('${channelOf(schema)}', '');
       COMMIT;`,
    );
    for (const me of mes) {
      await waitFor(() => me.latest()?.name === 'Renamed outside', {
        timeoutMs: CONVERGE_MS,
        what: 'the outside write in a subscription',
      });
    }
    assert.match(a.stderr, /a commit from outside the servers/);
    for (const c of clients) await c.close();
  });

  test('connections the database dropped while idle are re-established without failing a call', async () => {
    const u = await signUp(a);
    const cut = psql(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'dojo'`);
    assert.ok(Number(cut) >= 2, `cut ${cut} connections`);
    // Every reader and the writer of both nodes: each first call on a dropped
    // connection reconnects and succeeds.
    for (const node of [a, b]) {
      const client = node.httpClient(u.token);
      for (let i = 0; i < 6; i++) assert.equal((await client.query(api.me, {})).credits, SIGNUP_CREDITS);
      const wf = await client.mutation(api.createWorkflow, { title: `after the cut ${node.proc.pid}` });
      assert.equal((await client.query(api.getWorkflow, { id: wf })).title, `after the cut ${node.proc.pid}`);
    }
  });

  test('a node whose notification connection is cut listens again and catches up', async () => {
    const u = await signUp(a);
    const c = await syncClient(a, u.token);
    const me = watch(c, api.me, {});
    await waitFor(() => me.latest()?.credits === SIGNUP_CREDITS, { what: 'the signup credits on A' });
    const names = [a, b].map((node) => `'dojo-listener-${node.proc.pid}'`).join(', ');
    const cut = psql(
      `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name IN (${names})`,
    );
    assert.equal(Number(cut), 2, "both nodes' listeners were cut");
    await b.adminCall('admin:grantCredits', { userId: u.user._id, amount: 5 });
    await waitFor(() => me.latest()?.credits === SIGNUP_CREDITS + 5, {
      timeoutMs: CONVERGE_MS,
      what: 'the grant made through B while A was not listening',
    });
    await waitFor(() => /listening again/.test(a.stderr), { what: 'A listening again' });
    await b.adminCall('admin:grantCredits', { userId: u.user._id, amount: 1 });
    await waitFor(() => me.latest()?.credits === SIGNUP_CREDITS + 6, {
      timeoutMs: CONVERGE_MS,
      what: 'a grant after A listens again',
    });
    await c.close();
  });
});
