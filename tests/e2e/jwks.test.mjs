// jwks.test.mjs — the issuer's key set over time (api.md §6): dojo caches the
// JWKS, refetches it when a token names an unknown kid, and does so at most
// once a minute however many unknown kids arrive. The issuer counts its JWKS
// requests.
//
// The pace is a minute by contract, so this file follows one real minute:
// the server fetches the keys once at the start; a key rotated in right after
// is refused (no refetch within the minute) however often it is tried; about a
// minute after the first fetch a single refetch happens and the new key is
// accepted. That makes this file take a little over 60 s; it is kept apart
// so the other suites stay fast and ctest can run it alongside them.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { checkAfterEach, makeFunctionReference as ref, startDojo, waitFor } from './lib/dojo.mjs';
import { newSubject, startIssuer } from './lib/issuer.mjs';

const REFETCH_INTERVAL_MS = 60_000;
const me = ref('users:me');

let issuer;
let dojo;
let firstFetchAt; // Date.now() once the first fetch has been answered
let rotatedKid;
let originalKid;

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer });
  assert.equal(issuer.requestCount(), 0, 'keys are fetched lazily');
  await dojo.httpClient(await issuer.token({})).query(me, {});
  firstFetchAt = Date.now();
  assert.equal(issuer.requestCount(), 1, 'the first token fetched the keys once');
  originalKid = issuer.currentKid('RS256');
  rotatedKid = await issuer.rotate('RS256');
});
checkAfterEach(() => dojo);
after(() => issuer?.close());

async function status(token) {
  const res = await dojo.http('POST', '/api/query', {
    headers: { Authorization: `Bearer ${token}` },
    body: { path: 'users:me', args: {} },
  });
  return res;
}

test('repeated unknown kids do not refetch the JWKS within a minute of the last fetch', async () => {
  const unpublished = await issuer.addKey({ alg: 'RS256', publish: false, makeCurrent: false });
  for (let i = 0; i < 5; i++) {
    for (const kid of [rotatedKid, unpublished]) {
      const res = await status(await issuer.token({}, { kid }));
      assert.equal(res.status, 401, res.text);
      assert.match(res.json.message, new RegExp(`key id.*${kid}`));
    }
  }
  assert.ok(Date.now() - firstFetchAt < REFETCH_INTERVAL_MS, 'still within the minute');
  assert.equal(issuer.requestCount(), 1, 'no refetch within the minute');
});

test('a token signed by a rotated-in key is accepted once the server refetches the JWKS', async () => {
  const sub = newSubject();
  const accepted = await waitFor(
    async () => {
      const res = await status(await issuer.token({ sub }, { kid: rotatedKid, expiresIn: 120 }));
      if (res.status === 200) return res;
      assert.equal(res.status, 401, res.text);
      assert.match(res.json.message, /key id/);
      return null;
    },
    { timeoutMs: REFETCH_INTERVAL_MS + 20_000, intervalMs: 500, what: 'the rotated key to be accepted' },
  );
  assert.deepEqual(accepted.json, { status: 'success', value: null });
  assert.ok(Date.now() - firstFetchAt >= REFETCH_INTERVAL_MS - 1000, 'not refetched before the minute was up');
  assert.equal(issuer.requestCount(), 2, 'one refetch for all the polls with the unknown kid');

  // The key rotated out of signing is still published, and still accepted.
  const old = await status(await issuer.token({}, { kid: originalKid }));
  assert.equal(old.status, 200, old.text);
  assert.equal(issuer.requestCount(), 2);
});
