// users.test.mjs — users:getOrCreate and users:me (api.md §3 "users"): one
// user per identity however many first calls race, the signup grant from
// SIGNUP_CREDITS (process environment or `dojo env set`) and its ledger row,
// the profile refreshed from a newer token, and users:me that only reads.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { checkAfterEach, makeFunctionReference as ref, startDojo } from './lib/dojo.mjs';
import { newSubject, startIssuer } from './lib/issuer.mjs';

const api = {
  getOrCreate: ref('users:getOrCreate'),
  me: ref('users:me'),
  transactions: ref('transactions:list'),
};
const firstPage = { paginationOpts: { numItems: 50, cursor: null } };

let issuer;
let dojo; // SIGNUP_CREDITS unset
const servers = [];

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer, env: { SIGNUP_CREDITS: null } });
  servers.push(dojo);
});
checkAfterEach(() => servers);
after(() => issuer?.close());

async function startServer(env) {
  const s = await startDojo({ issuer, env });
  servers.push(s);
  return s;
}

/** How many users the server holds (admin:verifyLedger checks each one). */
async function userCount(server = dojo) {
  return (await server.adminCall('admin:verifyLedger', {})).usersChecked;
}

test('getOrCreate creates the user once and later calls return the same document', async () => {
  const token = await issuer.token({ email: 'once@example.com', name: 'Once Only' });
  const client = dojo.httpClient(token);
  const before = await userCount();
  const first = await client.mutation(api.getOrCreate, {});
  const second = await client.mutation(api.getOrCreate, {});
  assert.equal(second._id, first._id);
  assert.equal(second._creationTime, first._creationTime);
  assert.deepEqual(second, first);
  assert.equal(await userCount(), before + 1);
});

test('20 concurrent first calls with the same token create exactly one user', async () => {
  const token = await issuer.token({ sub: newSubject(), email: 'race@example.com' });
  const before = await userCount();
  // One client per call: a ConvexHttpClient sends its own mutations one at a time.
  const users = await Promise.all(
    Array.from({ length: 20 }, () => dojo.httpClient(token).mutation(api.getOrCreate, {})),
  );
  assert.equal(new Set(users.map((u) => u._id)).size, 1, 'every call returned the same user');
  assert.equal(await userCount(), before + 1);
  await dojo.verifyDb();
});

test('without SIGNUP_CREDITS a new user has 0 credits and no transaction', async () => {
  const client = dojo.httpClient(await issuer.token({ email: 'free@example.com' }));
  const user = await client.mutation(api.getOrCreate, {});
  assert.equal(user.credits, 0);
  const ledger = await client.query(api.transactions, firstPage);
  assert.deepEqual(ledger.page, []);
});

test('SIGNUP_CREDITS=0 gives a new user 0 credits and no transaction', async () => {
  const zero = await startServer({ SIGNUP_CREDITS: '0' });
  const client = zero.httpClient(await issuer.token({ email: 'zero@example.com' }));
  const user = await client.mutation(api.getOrCreate, {});
  assert.equal(user.credits, 0);
  assert.deepEqual((await client.query(api.transactions, firstPage)).page, []);
});

describe('SIGNUP_CREDITS=50', () => {
  async function assertSignupGrant(server) {
    const client = server.httpClient(await issuer.token({ email: `new-${newSubject()}@example.com` }));
    const user = await client.mutation(api.getOrCreate, {});
    assert.equal(user.credits, 50);
    const ledger = await client.query(api.transactions, firstPage);
    assert.equal(ledger.page.length, 1, JSON.stringify(ledger.page));
    const [tx] = ledger.page;
    assert.equal(tx.kind, 'signup');
    assert.equal(tx.amount, 50);
    assert.equal(tx.balanceAfter, 50);
    assert.equal(tx.actor, 'system');
    assert.equal(tx.userId, user._id);

    // A later call grants nothing more.
    const again = await client.mutation(api.getOrCreate, {});
    assert.equal(again.credits, 50);
    assert.equal((await client.query(api.transactions, firstPage)).page.length, 1);
  }

  test('from the process environment gives 50 credits and one "signup" transaction by "system"', async () => {
    await assertSignupGrant(await startServer({ SIGNUP_CREDITS: '50' }));
  });

  test('set with dojo env set applies to the next new user without a restart', async () => {
    const server = await startServer({ SIGNUP_CREDITS: null });
    const before = await server.httpClient(await issuer.token({})).mutation(api.getOrCreate, {});
    assert.equal(before.credits, 0);
    const set = await server.cli(['env', 'set', 'SIGNUP_CREDITS', '50']);
    assert.equal(set.code, 0, set.stderr);
    await assertSignupGrant(server);
  });
});

test('a later call with a new name, email and picture refreshes those fields', async () => {
  const sub = newSubject();
  const first = await dojo
    .httpClient(await issuer.token({ sub, email: 'old@example.com', name: 'Old Name' }))
    .mutation(api.getOrCreate, {});
  const newer = await issuer.token({
    sub,
    email: 'new@example.com',
    name: 'New Name',
    picture: 'https://img.example/new.png',
  });
  const refreshed = await dojo.httpClient(newer).mutation(api.getOrCreate, {});
  assert.equal(refreshed._id, first._id);
  assert.equal(refreshed.name, 'New Name');
  assert.equal(refreshed.email, 'new@example.com');
  assert.equal(refreshed.pictureUrl, 'https://img.example/new.png');
  assert.equal(refreshed.identity.email, 'new@example.com');
  assert.equal(refreshed.identity.givenName, 'New');
  assert.equal(refreshed.credits, first.credits);
  assert.deepEqual(await dojo.httpClient(newer).query(api.me, {}), refreshed);
});

test('users:me never creates a user', async () => {
  const token = await issuer.token({ email: 'lurker@example.com' });
  const before = await userCount();
  assert.equal(await dojo.httpClient(token).query(api.me, {}), null);
  assert.equal(await dojo.httpClient(token).query(api.me, {}), null);
  assert.equal(await userCount(), before);
});
