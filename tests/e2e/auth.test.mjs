// auth.test.mjs — token verification and the admin key (api.md §2 and §6,
// convex-protocol.md §6), through the real ConvexHttpClient with tokens signed
// by a local issuer the way Clerk's "convex" template signs them: the identity
// a function sees, each refusal answered 401 with a message naming the failed
// check, the accepted algorithms and claim shapes, the missing-issuer setup and
// its repair with `dojo env set` on a running server, and what the admin key
// may do that a user token may not. Key rotation and the JWKS refetch pace are
// in jwks.test.mjs.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { checkAfterEach, makeFunctionReference as ref, startDojo } from './lib/dojo.mjs';
import { newSubject, startIssuer, tamperPayload } from './lib/issuer.mjs';

const api = {
  getOrCreate: ref('users:getOrCreate'),
  me: ref('users:me'),
  grantCredits: ref('admin:grantCredits'),
  transactions: ref('transactions:list'),
};

let issuer;
let dojo;
const servers = [];

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer });
  servers.push(dojo);
});
checkAfterEach(() => servers);
after(() => issuer?.close());

const nowS = () => Math.floor(Date.now() / 1000);

/** Calls users:me over raw HTTP with token; asserts a 401 JSON refusal and
 *  returns its message. */
async function refusalMessage(token, server = dojo) {
  const res = await server.http('POST', '/api/query', {
    headers: { Authorization: `Bearer ${token}` },
    body: { path: 'users:me', args: {} },
  });
  assert.equal(res.status, 401, `expected a 401 refusal, got ${res.status} ${res.text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(typeof res.json.code, 'string', res.text);
  assert.equal(typeof res.json.message, 'string', res.text);
  return res.json.message;
}

/** The token is refused and no function ran: a later valid token for the
 *  same subject finds no user created by the refused one. */
async function assertRefusedWithoutRunning(token, sub, messagePattern) {
  const res = await dojo.http('POST', '/api/mutation', {
    headers: { Authorization: `Bearer ${token}` },
    body: { path: 'users:getOrCreate', args: {} },
  });
  assert.equal(res.status, 401, res.text);
  assert.match(res.json.message, messagePattern);
  assert.match(await refusalMessage(token), messagePattern);
  const valid = await issuer.token({ sub });
  assert.equal(await dojo.httpClient(valid).query(api.me, {}), null, 'the refused token created nothing');
}

describe('identity', () => {
  test('users:getOrCreate stores the identity under the original backend field names', async () => {
    const sub = newSubject();
    const token = await issuer.token({
      sub,
      email: 'ada@example.com',
      name: 'Ada Lovelace',
      org_role: 'admin',
    });
    const user = await dojo.httpClient(token).mutation(api.getOrCreate, {});
    assert.deepEqual(user.identity, {
      tokenIdentifier: `${issuer.url}|${sub}`,
      subject: sub,
      issuer: issuer.url,
      name: 'Ada Lovelace',
      givenName: 'Ada',
      familyName: 'Lovelace',
      pictureUrl: `https://img.clerk.com/${sub}.png`,
      email: 'ada@example.com',
      emailVerified: true,
      org_role: 'admin',
    });
    for (const dropped of ['aud', 'exp', 'iat', 'nbf', 'jti']) {
      assert.equal(dropped in user.identity, false, `${dropped} is not part of the identity`);
    }
    assert.equal(user.tokenIdentifier, `${issuer.url}|${sub}`);
  });

  test("users:me returns the caller's user with a token and null without one", async () => {
    const token = await issuer.token({ email: 'me@example.com', name: 'Me Myself' });
    const created = await dojo.httpClient(token).mutation(api.getOrCreate, {});
    const me = await dojo.httpClient(token).query(api.me, {});
    assert.deepEqual(me, created);
    assert.equal(await dojo.httpClient().query(api.me, {}), null);
  });
});

describe('refused tokens answer 401 naming the check', () => {
  test('an expired token (beyond the 60 s skew) is refused as expired', async () => {
    const sub = newSubject();
    const token = await issuer.token({ sub }, { iat: nowS() - 200, expiresIn: -120 });
    await assertRefusedWithoutRunning(token, sub, /expired/i);
  });

  test('a token not yet valid (nbf in 5 minutes) is refused as not yet valid', async () => {
    const sub = newSubject();
    const token = await issuer.token({ sub }, { nbf: nowS() + 300, expiresIn: 600 });
    await assertRefusedWithoutRunning(token, sub, /not valid before/i);
  });

  test('a token for another audience is refused, pointing at the "convex" template', async () => {
    const sub = newSubject();
    const token = await issuer.token({ sub }, { aud: 'not-convex' });
    await assertRefusedWithoutRunning(token, sub, /audience.*convex.*template|template.*convex/i);
  });

  test('a token from another issuer is refused, naming CLERK_ISSUER_URL', async () => {
    const sub = newSubject();
    const token = await issuer.token({ sub }, { iss: 'https://other-app-12.clerk.accounts.dev' });
    const message = await refusalMessage(token);
    assert.match(message, /issuer/i);
    assert.match(message, /CLERK_ISSUER_URL/);
    await assertRefusedWithoutRunning(token, sub, /CLERK_ISSUER_URL/);
  });

  test('a token with alg none is refused as an unsupported algorithm', async () => {
    const sub = newSubject();
    const token = await issuer.token({ sub }, { alg: 'none' });
    await assertRefusedWithoutRunning(token, sub, /algorithm.*none.*not accepted/i);
  });

  test('an HS256 token is refused as an unsupported algorithm', async () => {
    const sub = newSubject();
    const token = await issuer.token({ sub }, { alg: 'HS256' });
    await assertRefusedWithoutRunning(token, sub, /algorithm.*HS256.*not accepted/i);
  });

  test('a token whose payload was tampered with is refused for its signature', async () => {
    const sub = newSubject();
    const genuine = await issuer.token({ sub: newSubject(), email: 'mallory@example.com' });
    const token = tamperPayload(genuine, (claims) => ({ ...claims, sub }));
    await assertRefusedWithoutRunning(token, sub, /signature/i);
  });

  test('a token signed with a key the issuer does not publish is refused as an unknown key id', async () => {
    const kid = await issuer.addKey({ alg: 'RS256', publish: false, makeCurrent: false });
    const sub = newSubject();
    const token = await issuer.token({ sub }, { kid });
    await assertRefusedWithoutRunning(token, sub, new RegExp(`key id.*${kid}`));
  });

  test('the ConvexHttpClient surfaces a refusal as an error carrying the message', async () => {
    const token = await issuer.token({}, { aud: 'not-convex' });
    await assert.rejects(dojo.httpClient(token).query(api.me, {}), (err) => {
      assert.match(err.message, /audience/i);
      return true;
    });
  });
});

describe('accepted tokens', () => {
  /** getOrCreate with the token succeeds as the token's subject. */
  async function assertAccepted(token, sub) {
    const user = await dojo.httpClient(token).mutation(api.getOrCreate, {});
    assert.equal(user.tokenIdentifier, `${issuer.url}|${sub}`);
  }

  for (const alg of ['RS256', 'ES256', 'EdDSA']) {
    test(`a token signed with ${alg} is accepted`, async () => {
      const sub = newSubject();
      await assertAccepted(await issuer.token({ sub }, { alg }), sub);
    });
  }

  test('an aud array containing "convex" is accepted', async () => {
    const sub = newSubject();
    await assertAccepted(await issuer.token({ sub }, { aud: ['convex', 'https://api.example'] }), sub);
  });

  test('a token expired 30 s ago is accepted within the clock skew', async () => {
    const sub = newSubject();
    await assertAccepted(await issuer.token({ sub }, { iat: nowS() - 90, expiresIn: -30 }), sub);
  });
});

describe('without CLERK_ISSUER_URL', () => {
  async function serverWithoutIssuer() {
    const s = await startDojo({ env: { CLERK_ISSUER_URL: null } });
    servers.push(s);
    return s;
  }

  test('every token is refused with a message telling to set CLERK_ISSUER_URL', async () => {
    const bare = await serverWithoutIssuer();
    for (const alg of ['RS256', 'ES256']) {
      const message = await refusalMessage(await issuer.token({}, { alg }), bare);
      assert.match(message, /set CLERK_ISSUER_URL/);
    }
  });

  test('dojo env set CLERK_ISSUER_URL makes tokens work without a restart', async () => {
    const bare = await serverWithoutIssuer();
    const sub = newSubject();
    assert.match(await refusalMessage(await issuer.token({ sub }), bare), /CLERK_ISSUER_URL/);

    const set = await bare.cli(['env', 'set', 'CLERK_ISSUER_URL', issuer.url]);
    assert.equal(set.code, 0, set.stderr);

    const user = await bare.httpClient(await issuer.token({ sub })).mutation(api.getOrCreate, {});
    assert.equal(user.tokenIdentifier, `${issuer.url}|${sub}`);
  });
});

describe('the admin key', () => {
  test('Authorization: Convex <admin key> runs internal functions', async () => {
    const body = await dojo.adminCallRaw('admin:verifyLedger', {});
    assert.equal(body.status, 'success', JSON.stringify(body));
    assert.equal(body.value.ok, true);
  });

  test('a wrong admin key is refused with 401', async () => {
    const res = await dojo.http('POST', '/api/function', {
      headers: { Authorization: `Convex ${dojo.adminKey}-wrong` },
      body: { path: 'admin:verifyLedger', args: {} },
    });
    assert.equal(res.status, 401, res.text);
    assert.equal(typeof res.json.code, 'string');
    assert.match(res.json.message, /admin key/i);
  });

  test('a user token calling admin:grantCredits gets FORBIDDEN and nothing changes', async () => {
    const token = await issuer.token({ email: 'greedy@example.com' });
    const client = dojo.httpClient(token);
    const user = await client.mutation(api.getOrCreate, {});
    await assert.rejects(client.mutation(api.grantCredits, { userId: user._id, amount: 1000 }), (err) => {
      assert.equal(err.data?.code, 'FORBIDDEN', `${err.message} ${JSON.stringify(err.data)}`);
      return true;
    });
    const after = await client.query(api.me, {});
    assert.equal(after.credits, user.credits);
    const ledger = await client.query(api.transactions, { paginationOpts: { numItems: 10, cursor: null } });
    assert.deepEqual(ledger.page, []);
  });
});
