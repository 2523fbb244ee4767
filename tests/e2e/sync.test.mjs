// sync.test.mjs — the WebSocket sync protocol with the real ConvexClient
// (and a bare protocol client where every push must be counted):
// subscriptions follow a run through its lifecycle, a resolved mutation is
// already visible, users see nothing of each other, tokens refresh, an
// expired token ends authenticated state, a mutation resent after a dropped
// socket is not run twice, and a thousand sessions all hear one change.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConvexClient } from 'convex/browser';
import WebSocket from 'ws';

import { checkAfterEach, makeFunctionReference as ref, startDojo, waitFor } from './lib/dojo.mjs';
import { newSubject, startIssuer } from './lib/issuer.mjs';
import { startProxy } from './lib/proxy.mjs';
import { bigIntToTs, RawSyncClient, tsToBigInt } from './lib/sync_raw.mjs';

let issuer;
let dojo;
checkAfterEach(() => dojo);

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer, env: { SIGNUP_CREDITS: '10' } });
});
after(async () => {
  await issuer?.close();
});

const api = {
  me: ref('users:me'),
  getOrCreate: ref('users:getOrCreate'),
  createRun: ref('runs:create'),
  getRun: ref('runs:get'),
  listRuns: ref('runs:list'),
  claim: ref('runs:claim'),
  complete: ref('runs:complete'),
};

function client(url = dojo.url) {
  return new ConvexClient(url, { webSocketConstructor: WebSocket, logger: false, unsavedChangesWarning: false });
}

/** A ConvexClient signed in as a new user (created), and that user's token factory. */
async function signedIn({ sub = newSubject(), url } = {}) {
  const c = client(url);
  const fresh = () => issuer.token({ sub });
  const authed = new Promise((resolve) => c.setAuth(fresh, (ok) => ok && resolve()));
  await authed;
  const user = await c.mutation(api.getOrCreate, {});
  return { c, sub, user, fresh };
}

/** Collects every value a subscription delivers. */
function watch(c, fn, args) {
  const values = [];
  const unsubscribe = c.onUpdate(fn, args, (v) => values.push(v));
  return { values, unsubscribe, latest: () => values[values.length - 1] };
}

describe('subscriptions follow the data', () => {
  test('a run is pushed queued, processing, completed, in order, to runs:get and runs:list', async () => {
    const { c } = await signedIn();
    const runId = await c.mutation(api.createRun, { input: { model: 'flux', prompt: 'a fox' } });
    const one = watch(c, api.getRun, { id: runId });
    const list = watch(c, api.listRuns, { paginationOpts: { numItems: 10, cursor: null } });
    await waitFor(() => one.latest()?.status === 'queued', { what: 'queued' });
    const claimed = await dojo.adminCall('runs:claim', { workerId: 'w1' });
    assert.equal(claimed._id, runId);
    await waitFor(() => one.latest()?.status === 'processing', { what: 'processing' });
    await dojo.adminCall('runs:complete', { id: runId, workerId: 'w1', output: 'https://cdn.example/fox.png' });
    await waitFor(() => one.latest()?.status === 'completed', { what: 'completed' });
    await waitFor(() => list.latest()?.page?.[0]?.status === 'completed', { what: 'list completed' });
    const statuses = one.values.map((v) => v.status).filter((s, i, a) => s !== a[i - 1]);
    assert.deepEqual(statuses, ['queued', 'processing', 'completed']);
    const listStatuses = list.values.map((v) => v.page[0]?.status).filter((s, i, a) => s !== a[i - 1]);
    assert.deepEqual(listStatuses, ['queued', 'processing', 'completed']);
    assert.equal(one.latest().output, 'https://cdn.example/fox.png');
    await c.close();
  });

  test('users:me shows a grant without polling', async () => {
    const { c, user } = await signedIn();
    const me = watch(c, api.me, {});
    await waitFor(() => me.latest()?.credits === 10, { what: 'signup credits' });
    await dojo.adminCall('admin:grantCredits', { userId: user._id, amount: 25 });
    await waitFor(() => me.latest()?.credits === 35, { what: 'granted balance' });
    await c.close();
  });

  test('a resolved mutation is already visible in the same client\'s subscriptions', async () => {
    const { c } = await signedIn();
    const me = watch(c, api.me, {});
    const runs = watch(c, api.listRuns, { paginationOpts: { numItems: 10, cursor: null } });
    await waitFor(() => me.latest() && runs.latest(), { what: 'first results' });
    for (let i = 0; i < 3; i++) {
      const before = me.latest().credits;
      const id = await c.mutation(api.createRun, { input: { model: 'flux', prompt: `p${i}` } });
      // At the instant the promise resolves, the client's state holds the write.
      assert.equal(me.latest().credits, before - 1);
      assert.equal(runs.latest().page[0]._id, id);
    }
    await c.close();
  });

  test('a subscription hears nothing of another user\'s writes', async () => {
    const a = await signedIn();
    const b = await signedIn();
    const raw = await RawSyncClient.connect(dojo.url);
    raw.authenticate(await a.fresh());
    raw.add(0, 'users:me', {});
    raw.add(1, 'runs:list', { paginationOpts: { numItems: 5, cursor: null } });
    await raw.waitFor(() => raw.valueOf(0) !== undefined && raw.valueOf(1) !== undefined, {
      what: 'both first results',
    });
    const pushesBefore = raw.updatesFor(0).length + raw.updatesFor(1).length;
    for (let i = 0; i < 5; i++) await b.c.mutation(api.createRun, { input: { model: 'flux', prompt: 'b' } });
    await dojo.adminCall('admin:grantCredits', { userId: b.user._id, amount: 5 });
    // Now a write of a's own: it must arrive, and be the only push since.
    await a.c.mutation(api.createRun, { input: { model: 'flux', prompt: 'a' } });
    await waitFor(() => raw.valueOf(1)?.page?.length === 1, { what: "a's own run" });
    const pushesAfter = raw.updatesFor(0).length + raw.updatesFor(1).length;
    assert.equal(pushesAfter - pushesBefore, 2, 'exactly one push per query, for a\'s own write');
    raw.close();
    await a.c.close();
    await b.c.close();
  });
});

describe('versions and identity', () => {
  test('every Transition starts at the previous endVersion and Authenticate is confirmed', async () => {
    const sub = newSubject();
    const raw = await RawSyncClient.connect(dojo.url);
    raw.authenticate(await issuer.token({ sub }));
    raw.add(0, 'users:me', {});
    // The server may confirm the Authenticate and answer the query in one
    // Transition or in two; either way the first starts at zero.
    await raw.waitFor(() => raw.transitions.find((t) => t.endVersion.querySet === 1), { what: 'query set 1' });
    const first = raw.transitions[0];
    assert.deepEqual(first.startVersion, { querySet: 0, identity: 0, ts: 'AAAAAAAAAAA=' });
    assert.equal(first.endVersion.identity, 1);
    const upTo = raw.transitions.length;
    assert.deepEqual(
      raw.transitions.flatMap((t) => t.modifications),
      [{ type: 'QueryUpdated', queryId: 0, value: null, logLines: [], journal: null }],
    );
    // A refreshed token with nothing changed still gets a Transition.
    raw.authenticate(await issuer.token({ sub }));
    const second = await raw.nextTransition({ after: upTo });
    assert.equal(second.endVersion.identity, 2);
    assert.deepEqual(second.modifications, []);
    raw.remove(0);
    const third = await raw.nextTransition({ after: upTo + 1 });
    assert.deepEqual(third.modifications, [{ type: 'QueryRemoved', queryId: 0 }]);
    raw.close();
  });

  test('a second Authenticate queued behind a pending one is handled once, in order', async () => {
    // A fresh server has no keys yet: the first token waits for the JWKS
    // (held back here) while the refresh, the same token, queues behind it.
    // When the keys land, the refresh is answered from the token cache
    // synchronously, from inside the handling of the queue.
    const ownIssuer = await startIssuer();
    const own = await startDojo({ issuer: ownIssuer });
    try {
      const release = ownIssuer.hold(ownIssuer.jwksPath);
      const sub = newSubject();
      const token = await ownIssuer.token({ sub });
      const raw = await RawSyncClient.connect(own.url);
      raw.authenticate(token);
      raw.authenticate(token);
      raw.add(0, 'users:me', {});
      await waitFor(() => ownIssuer.requestCount(ownIssuer.jwksPath) > 0, { what: 'the JWKS fetch' });
      release();
      await raw.waitFor(() => raw.transitions.find((t) => t.endVersion.identity === 2 && t.endVersion.querySet === 1), {
        what: 'identity 2 and query set 1',
      });
      assert.equal(raw.messages.filter((m) => m.type === 'FatalError' || m.type === 'AuthError').length, 0);
      assert.deepEqual(raw.updatesFor(0).map((m) => m.type), ['QueryUpdated'], 'the query answered once');
      const r = await raw.mutation('users:getOrCreate', {});
      assert.equal(r.success, true, JSON.stringify(r));
      raw.close();
    } finally {
      await own.stop();
      await ownIssuer.close();
    }
  });

  test('a reconnect carrying a newer maxObservedTimestamp moves the clock past it; an absurd one is ignored', async () => {
    const ahead = BigInt(Date.now() + 10 * 60_000) * 1_000_000n; // ten minutes ahead, in ns
    const raw = await RawSyncClient.connect(dojo.url, { maxObservedTimestamp: bigIntToTs(ahead) });
    raw.authenticate(await issuer.token({ sub: newSubject() }));
    const made = await raw.mutation('users:getOrCreate', {});
    assert.equal(made.success, true, JSON.stringify(made));
    assert.ok(tsToBigInt(made.ts) > ahead, 'a commit after the reconnect is later than what the client saw');
    raw.close();

    const absurd = (1n << 64n) - 2n;
    const evil = await RawSyncClient.connect(dojo.url, { maxObservedTimestamp: bigIntToTs(absurd) });
    evil.authenticate(await issuer.token({ sub: newSubject() }));
    const next = await evil.mutation('users:getOrCreate', {});
    assert.equal(next.success, true, JSON.stringify(next));
    assert.ok(tsToBigInt(next.ts) < ahead + 3_600_000_000_000n, 'the clock did not jump to the end of its range');
    evil.close();
  });

  test('MutationResponse comes before the Transition that covers it', async () => {
    const sub = newSubject();
    const raw = await RawSyncClient.connect(dojo.url);
    raw.authenticate(await issuer.token({ sub }));
    raw.add(0, 'users:me', {});
    await raw.nextTransition({ after: 0 });
    const resp = await raw.mutation('users:getOrCreate', {});
    assert.equal(resp.success, true);
    const idx = raw.messages.indexOf(resp);
    const covering = await raw.waitFor(
      (ms) => ms.slice(idx + 1).find((m) => m.type === 'Transition' && tsToBigInt(m.endVersion.ts) >= tsToBigInt(resp.ts)),
      { what: 'covering transition' },
    );
    assert.equal(covering.modifications[0].value.tokenIdentifier, `${issuer.url}|${sub}`);
    assert.ok(!raw.messages.slice(0, idx).some((m) => m.type === 'Transition' && tsToBigInt(m.endVersion.ts) >= tsToBigInt(resp.ts)));
    raw.close();
  });

  test('a failed mutation answers with the message and error data, and writes nothing', async () => {
    const raw = await RawSyncClient.connect(dojo.url);
    const resp = await raw.mutation('runs:create', { input: { model: 'flux', prompt: 'x' } });
    assert.equal(resp.success, false);
    assert.equal(resp.result, 'No identity found');
    assert.equal(resp.ts, null);
    assert.deepEqual(resp.errorData, { code: 'UNAUTHENTICATED' });
    raw.close();
  });

  test('token refresh re-runs the session\'s queries under the new identity', async () => {
    const a = newSubject();
    const b = newSubject();
    await dojo.httpClient(await issuer.token({ sub: b })).mutation(api.getOrCreate, {});
    const c = client();
    let token = await issuer.token({ sub: a });
    const changes = [];
    await new Promise((resolve) =>
      c.setAuth(async () => token, (ok) => {
        changes.push(ok);
        if (ok) resolve();
      }),
    );
    const me = watch(c, api.me, {});
    await waitFor(() => me.values.length > 0, { what: 'first users:me' });
    assert.equal(me.latest(), null); // a has no user yet
    // The next token names another subject: the same subscription now answers for b.
    token = await issuer.token({ sub: b });
    c.setAuth(async () => token, (ok) => changes.push(ok));
    await waitFor(() => me.latest()?.tokenIdentifier === `${issuer.url}|${b}`, { what: "b's user" });
    assert.ok(!changes.includes(false));
    await c.close();
  });

  test('an expired token leaves the client unauthenticated', async () => {
    const c = client();
    const sub = newSubject();
    const expired = async () => issuer.token({ sub, expiresIn: -600 });
    const change = new Promise((resolve) => c.setAuth(expired, (ok) => resolve(ok)));
    assert.equal(await change, false);
    // The client falls back to anonymous and keeps working.
    assert.equal(await c.query(api.me, {}), null);
    await c.close();
  });
});

describe('paginated subscriptions', () => {
  test('a subscribed page keeps its end as rows arrive (gapless), also after a reconnect', async () => {
    const { c, fresh } = await signedIn();
    for (let i = 0; i < 5; i++) await c.mutation(api.createRun, { input: { model: 'flux', prompt: `r${i}` } });
    const raw = await RawSyncClient.connect(dojo.url);
    raw.authenticate(await fresh());
    raw.add(0, 'runs:list', { paginationOpts: { numItems: 2, cursor: null, id: 1 } });
    const first = await raw.waitFor(() => raw.updatesFor(0).find((m) => m.type === 'QueryUpdated'), { what: 'page 1' });
    assert.equal(first.value.page.length, 2);
    assert.equal(first.value.isDone, false);
    assert.equal(first.journal, first.value.continueCursor, 'the journal pins the page end');
    raw.add(1, 'runs:list', { paginationOpts: { numItems: 2, cursor: first.value.continueCursor, id: 1 } });
    const second = await raw.waitFor(() => raw.updatesFor(1).find((m) => m.type === 'QueryUpdated'), { what: 'page 2' });
    const pageTwoIds = second.value.page.map((r) => r._id);
    const pushesToPageTwo = raw.updatesFor(1).length;
    const newest = await c.mutation(api.createRun, { input: { model: 'flux', prompt: 'new' } });
    await raw.waitFor(() => raw.valueOf(0)?.page.length === 3, { what: 'page 1 grows' });
    const grown = raw.valueOf(0);
    assert.equal(grown.page[0]._id, newest, 'the new row joins the first page');
    assert.deepEqual(grown.page.slice(1), first.value.page, 'the old rows stay on the first page');
    assert.equal(grown.continueCursor, first.value.continueCursor, 'the page end did not move');
    assert.equal(raw.updatesFor(1).length, pushesToPageTwo, 'the next page heard nothing');
    assert.deepEqual(raw.valueOf(1).page.map((r) => r._id), pageTwoIds);
    // After a reconnect the client sends the journal back: the same page.
    const again = await RawSyncClient.connect(dojo.url, { sessionId: raw.sessionId, connectionCount: 1 });
    again.authenticate(await fresh());
    again.add(0, 'runs:list', { paginationOpts: { numItems: 2, cursor: null, id: 1 } }, { journal: first.journal });
    await again.waitFor(() => again.valueOf(0), { what: 'page 1 after reconnect' });
    assert.deepEqual(again.valueOf(0).page.map((r) => r._id), grown.page.map((r) => r._id));
    raw.close();
    again.close();
    await c.close();
  });

  test('a page keeps its end when the identity changes (new claims, same user)', async () => {
    const { c, sub } = await signedIn();
    for (let i = 0; i < 5; i++) await c.mutation(api.createRun, { input: { model: 'flux', prompt: `r${i}` } });
    const raw = await RawSyncClient.connect(dojo.url);
    raw.authenticate(await issuer.token({ sub }));
    raw.add(0, 'runs:list', { paginationOpts: { numItems: 2, cursor: null, id: 1 } });
    const first = await raw.waitFor(() => raw.updatesFor(0).find((m) => m.type === 'QueryUpdated'), { what: 'page 1' });
    await c.mutation(api.createRun, { input: { model: 'flux', prompt: 'new' } });
    await raw.waitFor(() => raw.valueOf(0)?.page.length === 3, { what: 'page 1 grows' });
    // A refreshed token with another claim: a new identity for the same user.
    raw.authenticate(await issuer.token({ sub, name: 'Renamed User' }));
    await raw.waitFor(() => raw.transitions.find((t) => t.endVersion.identity === 2), { what: 'identity 2' });
    const after = raw.transitions.filter((t) => t.endVersion.identity === 2).flatMap((t) => t.modifications);
    const pushed = after.filter((m) => m.queryId === 0 && m.type === 'QueryUpdated');
    const page = pushed.length ? pushed[pushed.length - 1].value : raw.valueOf(0);
    assert.equal(page.page.length, 3, 'the page did not shrink back to numItems');
    assert.equal(page.continueCursor, first.value.continueCursor, 'its end did not move');
    raw.close();
    await c.close();
  });

  test('a cursor that cannot be decoded fails with InvalidCursor', async () => {
    const { c, fresh } = await signedIn();
    const raw = await RawSyncClient.connect(dojo.url);
    raw.authenticate(await fresh());
    raw.add(0, 'runs:list', { paginationOpts: { numItems: 2, cursor: 'garbage!' } });
    const failed = await raw.waitFor(() => raw.updatesFor(0).find((m) => m.type === 'QueryFailed'), { what: 'failure' });
    assert.match(failed.errorMessage, /InvalidCursor/);
    raw.close();
    await c.close();
  });
});

describe('exactly once', () => {
  test('a mutation resent after the socket dropped is not run twice', async () => {
    const proxy = await startProxy(dojo.url);
    const { c, user } = await signedIn({ url: proxy.url });
    const me = watch(c, api.me, {});
    await waitFor(() => me.latest()?.credits === 10, { what: 'balance' });
    proxy.cutAfterNextClientWrite();
    const runId = await c.mutation(api.createRun, { input: { model: 'flux', prompt: 'once' } });
    assert.equal(proxy.cuts, 1);
    await waitFor(() => me.latest()?.credits === 9, { what: 'one charge' });
    const page = await dojo.adminCall('admin:verifyLedger', {});
    assert.equal(page.ok, true);
    const runs = await c.query(api.listRuns, { paginationOpts: { numItems: 10, cursor: null } });
    assert.deepEqual(runs.page.map((r) => r._id), [runId]);
    const fresh = await dojo.httpClient(await issuer.token({ sub: user.tokenIdentifier.split('|')[1] })).query(api.me, {});
    assert.equal(fresh.credits, 9);
    await c.close();
    await proxy.close();
  });
  test("a resend under another identity or function never answers with someone else's result", async () => {
    const sub = newSubject();
    const alice = await RawSyncClient.connect(dojo.url);
    alice.authenticate(await issuer.token({ sub }));
    const mine = await alice.mutation('users:getOrCreate', {}, { requestId: 0 });
    assert.equal(mine.success, true, JSON.stringify(mine));
    alice.close();
    // Someone who learned the session id, without a token: refused, nothing leaks.
    const thief = await RawSyncClient.connect(dojo.url, { sessionId: alice.sessionId, connectionCount: 1 });
    const stolen = await thief.mutation('users:getOrCreate', {}, { requestId: 0 });
    assert.equal(stolen.success, false);
    assert.match(stolen.result, /already used for another call/);
    assert.ok(!JSON.stringify(stolen).includes(sub), 'nothing of the first caller in the answer');
    // Same caller, other function: refused too.
    const other = await thief.mutation('workflows:create', { title: 'x' }, { requestId: 0 });
    assert.equal(other.success, false);
    thief.close();
    // The owner's own resend is still answered from the record.
    const again = await RawSyncClient.connect(dojo.url, { sessionId: alice.sessionId, connectionCount: 2 });
    again.authenticate(await issuer.token({ sub }));
    const resent = await again.mutation('users:getOrCreate', {}, { requestId: 0 });
    assert.equal(resent.success, true);
    assert.deepEqual(resent.result, mine.result);
    assert.equal(resent.ts, mine.ts);
    again.close();
  });

  test('a message before Connect ends the session', async () => {
    const ws = new WebSocket(`${dojo.url.replace(/^http/, 'ws')}/api/1.48.0/sync`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const got = [];
    ws.on('message', (d) => got.push(JSON.parse(d.toString())));
    const closed = new Promise((resolve) => ws.once('close', resolve));
    ws.send(JSON.stringify({ type: 'Mutation', requestId: 0, udfPath: 'users:getOrCreate', args: [{}] }));
    await closed;
    assert.equal(got.length, 1, JSON.stringify(got));
    assert.equal(got[0].type, 'FatalError');
    assert.match(got[0].error, /first message must be Connect/);
  });

  test('a mutation sent after the token expired is not run', async () => {
    const sub = newSubject();
    const raw = await RawSyncClient.connect(dojo.url);
    // Valid for about two more seconds (the 60 s clock skew allowance).
    raw.authenticate(await issuer.token({ sub }, { exp: Math.floor(Date.now() / 1000) - 58 }));
    raw.add(0, 'users:me', {});
    await raw.waitFor(() => raw.transitions.find((t) => t.endVersion.identity === 1), { what: 'accepted' });
    await new Promise((resolve) => setTimeout(resolve, 4500));
    raw.send({ type: 'Mutation', requestId: 0, udfPath: 'users:getOrCreate', args: [{}] });
    const authError = await raw.waitFor((ms) => ms.find((m) => m.type === 'AuthError'), { what: 'AuthError' });
    assert.match(authError.error, /expired/);
    assert.ok(!raw.messages.some((m) => m.type === 'MutationResponse' && m.success), 'nothing ran');
    const grant = await fetch(`${dojo.url}/api/mutation`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Convex ${dojo.adminKey}` },
      body: JSON.stringify({
        path: 'admin:grantCredits',
        args: { tokenIdentifier: `${issuer.url}|${sub}`, amount: 1 },
        format: 'json',
      }),
    });
    const body = await grant.json();
    assert.equal(body.status, 'error', 'no user was created');
    assert.equal(body.errorData?.code, 'NOT_FOUND', JSON.stringify(body));
  });
});

describe('bounds', () => {
  test('a session may hold 1,000 subscriptions; the next one fails and names the bound', async () => {
    const raw = await RawSyncClient.connect(dojo.url);
    const adds = Array.from({ length: 1001 }, (_, i) => ({ type: 'Add', queryId: i, udfPath: 'users:me', args: [{}] }));
    raw.modify(adds);
    await raw.waitFor(() => raw.transitions.find((t) => t.endVersion.querySet === 1), { what: 'query set 1' });
    const mods = raw.transitions.flatMap((t) => t.modifications);
    assert.equal(mods.filter((m) => m.type === 'QueryUpdated').length, 1000);
    const failed = mods.filter((m) => m.type === 'QueryFailed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0].queryId, 1000);
    assert.match(failed[0].errorMessage, /at most 1000/);
    raw.close();
  });

  test('a query set past the subscription bound, a long path or journal: refused without holding them', async () => {
    const raw = await RawSyncClient.connect(dojo.url);
    raw.modify([
      { type: 'Add', queryId: 0, udfPath: 'u'.repeat(300), args: [{}] },
      { type: 'Add', queryId: 1, udfPath: 'runs:list', args: [{ paginationOpts: { numItems: 1, cursor: null } }], journal: 'J'.repeat(5000) },
    ]);
    await raw.waitFor(() => raw.transitions.find((t) => t.endVersion.querySet === 1), { what: 'query set 1' });
    const failed = raw.transitions.flatMap((t) => t.modifications).filter((m) => m.type === 'QueryFailed');
    assert.match(failed.find((m) => m.queryId === 0).errorMessage, /udfPath.*at most 255 bytes/);
    assert.match(failed.find((m) => m.queryId === 1).errorMessage, /journal has at most 4096 bytes/);
    // 1,100 Adds: the bound plus a few refusals are answered, then the session ends.
    const adds = Array.from({ length: 1100 }, (_, i) => ({ type: 'Add', queryId: 10 + i, udfPath: 'users:me', args: [{}] }));
    raw.modify(adds);
    const fatal = await raw.waitFor((ms) => ms.find((m) => m.type === 'FatalError'), { what: 'FatalError' });
    assert.match(fatal.error, /TooManySubscriptions: .*at most 1000/);
    await waitFor(() => raw.closed, { what: 'close' });
    // More modifications in one message than a query set can hold: refused at once.
    const big = await RawSyncClient.connect(dojo.url);
    big.modify(Array.from({ length: 5000 }, (_, i) => ({ type: 'Remove', queryId: i })));
    const tooMany = await big.waitFor((ms) => ms.find((m) => m.type === 'FatalError'), { what: 'FatalError' });
    assert.match(tooMany.error, /at most \d+ modifications/);
  });

  test('a message over 16 MiB closes the socket with 1009 and the server keeps serving', async () => {
    const raw = await RawSyncClient.connect(dojo.url);
    raw.ws.send('x'.repeat(16 * 1024 * 1024 + 1));
    await waitFor(() => raw.closed, { what: 'close' });
    assert.equal(raw.closed.code, 1009);
    const other = await RawSyncClient.connect(dojo.url);
    other.add(0, 'users:me', {});
    await other.waitFor(() => other.valueOf(0) === null, { what: 'a fresh session works' });
    other.close();
  });

  test('a mutation with U+0000 in a string fails alone; the session goes on', async () => {
    const raw = await RawSyncClient.connect(dojo.url);
    raw.authenticate(await issuer.token({ sub: newSubject() }));
    assert.equal((await raw.mutation('users:getOrCreate', {})).success, true);
    const bad = await raw.mutation('workflows:create', { title: 'a\u0000b' });
    assert.equal(bad.success, false);
    assert.match(bad.result, /strings may not contain the character U\+0000/);
    const good = await raw.mutation('workflows:create', { title: 'ab' });
    assert.equal(good.success, true, JSON.stringify(good));
    assert.ok(!raw.messages.some((m) => m.type === 'FatalError'));
    raw.close();
  });

  test('a malformed message ends the session with FatalError', async () => {
    const raw = await RawSyncClient.connect(dojo.url);
    raw.ws.send('{not json');
    const fatal = await raw.waitFor((ms) => ms.find((m) => m.type === 'FatalError'), { what: 'FatalError' });
    assert.match(fatal.error, /InvalidJson/);
    await waitFor(() => raw.closed, { what: 'close' });
  });

  test('messages waiting behind a token check may hold 64 MiB; more ends the session', async () => {
    const ownIssuer = await startIssuer();
    const own = await startDojo({ issuer: ownIssuer });
    try {
      const release = ownIssuer.hold(ownIssuer.jwksPath);
      const raw = await RawSyncClient.connect(own.url);
      raw.authenticate(await ownIssuer.token({ sub: newSubject() }));
      await waitFor(() => ownIssuer.requestCount(ownIssuer.jwksPath) > 0, { what: 'the JWKS fetch' });
      const filler = 'x'.repeat(15 * 1024 * 1024);
      for (let i = 0; i < 5; i++) raw.send({ type: 'Event', eventType: 'filler', event: filler });
      const fatal = await raw.waitFor((ms) => ms.find((m) => m.type === 'FatalError'), {
        what: 'FatalError',
        timeoutMs: 30_000,
      });
      assert.match(fatal.error, /TooManyMessages: .*at most 64 MiB/);
      await waitFor(() => raw.closed, { what: 'close' });
      release();
      const other = await RawSyncClient.connect(own.url);
      other.add(0, 'users:me', {});
      await other.waitFor(() => other.valueOf(0) === null, { what: 'a fresh session works' });
      other.close();
    } finally {
      await own.stop();
      await ownIssuer.close();
    }
  });

  test('a client that stops reading holds one push, not every change, and is brought up to date when it reads again', { timeout: 120_000 }, async () => {
    const { c } = await signedIn();
    const wf = await c.mutation(ref('workflows:create'), { title: 'big' });
    const slow = await RawSyncClient.connect(dojo.url);
    slow.authenticate(await issuer.token({ sub: (await c.query(api.me, {})).tokenIdentifier.split('|')[1], expiresIn: 600 }));
    slow.add(0, 'workflows:get', { id: wf });
    await slow.waitFor(() => slow.valueOf(0), { what: 'first value' });
    slow.ws._socket.pause(); // reads nothing from now on
    const node = 'n'.repeat(900 * 1024);
    const sessionsBefore = await metric('dojo_sync_sessions');
    const UPDATES = 60; // 54 MB of pushes if each were kept
    let maxUnread = 0;
    for (let i = 0; i < UPDATES; i++) {
      await c.mutation(ref('workflows:update'), { id: wf, nodes: [`${i}:${node}`] });
      maxUnread = Math.max(maxUnread, await boundedBytes('ws_unread'));
    }
    // What the server holds for it is at most about one push (the value is
    // shared, the rest waits in the kernel), never the changes it missed.
    assert.ok(maxUnread <= 4 * 1024 * 1024, `unread bytes held: ${maxUnread}`);
    assert.equal(await metric('dojo_sync_sessions'), sessionsBefore, 'a slow reader is not cut off');
    const seen = slow.transitions.length;
    slow.ws._socket.resume();
    await slow.waitFor(() => slow.valueOf(0)?.nodes?.[0]?.startsWith(`${UPDATES - 1}:`), { timeoutMs: 30_000, what: 'the latest value' });
    const caughtUp = slow.transitions.length - seen;
    console.log(`slow reader: ${maxUnread} unread bytes held at most, ${caughtUp} Transitions after resuming`);
    assert.ok(caughtUp < UPDATES / 2, `it got ${caughtUp} Transitions for ${UPDATES} changes: the ones it missed are skipped`);
    slow.close();
    await c.close();
  });
});

/** dojo_bounded_bytes{structure="name"} from /metrics. */
async function boundedBytes(name) {
  const res = await dojo.http('GET', '/metrics');
  const line = res.text.split('\n').find((l) => l.startsWith(`dojo_bounded_bytes{structure="${name}"} `));
  assert.ok(line, `/metrics has no dojo_bounded_bytes for ${name}`);
  return Number(line.split(' ')[1]);
}

async function metric(name) {
  const res = await dojo.http('GET', '/metrics');
  const line = res.text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line.split(' ')[1]);
}

describe('fan-out', () => {
  test('1,000 subscribing sessions all receive one change', { timeout: 240_000 }, async () => {
    const N = 1000;
    const sub = newSubject();
    const token = await issuer.token({ sub, expiresIn: 600 });
    const user = await dojo.httpClient(token).mutation(api.getOrCreate, {});
    const clients = [];
    for (let i = 0; i < N; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, N - i) }, async () => {
          const raw = await RawSyncClient.connect(dojo.url);
          raw.authenticate(token);
          raw.add(0, 'users:me', {});
          return raw;
        }),
      );
      clients.push(...batch);
    }
    await Promise.all(clients.map((r) => r.waitFor(() => r.valueOf(0)?.credits === 10, { timeoutMs: 60_000, what: 'first' })));
    await dojo.adminCall('admin:grantCredits', { userId: user._id, amount: 7 });
    await Promise.all(clients.map((r) => r.waitFor(() => r.valueOf(0)?.credits === 17, { timeoutMs: 60_000, what: 'grant' })));
    for (const r of clients) r.close();
  });
});
