// devauth.test.mjs — signing in without Clerk (api.md §7, issue 5):
// `dojo dev --dev-auth` is its own OpenID issuer on its own port (discovery
// and JWKS), `dojo token` prints tokens it accepts through the real
// ConvexHttpClient, tokens of any other key are refused, the key is kept in
// ./.dojo and reused, a stored CLERK_ISSUER_URL wins (with a warning), and
// `dojo serve` never serves the issuer.

import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import * as jose from 'jose';
import {
  checkAfterEach,
  dojoCli,
  freshDir,
  makeFunctionReference as ref,
  startDev,
  startDojo,
} from './lib/dojo.mjs';

const api = { getOrCreate: ref('users:getOrCreate'), me: ref('users:me') };
const DISCOVERY = '/.well-known/openid-configuration';
const JWKS = '/.well-known/jwks.json';

let dev; // dojo dev --dev-auth in its own folder
const servers = [];

before(async () => {
  dev = await startDevAuth(freshDir('dojo-devauth-'));
});
checkAfterEach(() => servers);

async function startDevAuth(cwd, env = {}) {
  const s = await startDev({ cwd, args: ['--dev-auth'], env: { CLERK_ISSUER_URL: null, ...env } });
  servers.push(s);
  return s;
}

/** `dojo token …` in the dev folder; returns the token. */
async function token(args, cwd = dev.dir) {
  const r = await dojoCli(['token', ...args], { cwd });
  assert.equal(r.code, 0, `dojo token ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
const headerOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString());

async function callWithToken(server, jwt) {
  return server.http('POST', '/api/mutation', {
    headers: { Authorization: `Bearer ${jwt}` },
    body: { path: 'users:getOrCreate', args: {} },
  });
}

test('discovery names the dev server itself as the issuer and points at its JWKS', async () => {
  const res = await dev.http('GET', DISCOVERY);
  assert.equal(res.status, 200, res.text);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  assert.equal(res.json.issuer, dev.url);
  assert.equal(res.json.jwks_uri, `${dev.url}${JWKS}`);
  assert.deepEqual(res.json.id_token_signing_alg_values_supported, ['RS256']);
});

test('the JWKS publishes one public RS256 key, whose kid names the key file', async () => {
  const res = await dev.http('GET', JWKS);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.keys.length, 1);
  const [jwk] = res.json.keys;
  assert.equal(jwk.kty, 'RSA');
  assert.equal(jwk.alg, 'RS256');
  assert.equal(jwk.use, 'sig');
  assert.equal(jwk.d, undefined, 'never the private key');
  assert.equal(jwk.kid, await jose.calculateJwkThumbprint(jwk, 'sha256'), 'kid = RFC 7638 thumbprint');
  const keyFile = path.join(dev.dir, '.dojo', 'dev_auth_key.pem');
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  assert.equal(readFileSync(path.join(dev.dir, '.dojo', 'dev_auth_issuer'), 'utf8').trim(), dev.url);
});

test('the banner says dev auth is on and shows the dojo token command', async () => {
  assert.match(dev.proc.stdoutText, /Dev auth\s+on/);
  assert.match(dev.proc.stdoutText, /dojo token --sub user_1/);
});

test('a token from dojo token --sub user_1 --email a@b.co is accepted by users:getOrCreate', async () => {
  const jwt = await token(['--sub', 'user_1', '--email', 'a@b.co']);
  const user = await dev.httpClient(jwt).mutation(api.getOrCreate, {});
  assert.equal(user.tokenIdentifier, `${dev.url}|user_1`);
  assert.equal(user.email, 'a@b.co');
  assert.equal(user.identity.emailVerified, true);
  const me = await dev.httpClient(jwt).query(api.me, {});
  assert.equal(me._id, user._id);
});

test('dojo token carries the Clerk template claims, --name, --ttl and --claim', async () => {
  const jwt = await token(['--sub', 'user_2', '--name', 'Ada Lovelace', '--ttl', '120', '--claim', 'org_role=admin', '--claim', 'seats=3']);
  const c = claimsOf(jwt);
  assert.equal(c.iss, dev.url);
  assert.equal(c.aud, 'convex');
  assert.equal(c.sub, 'user_2');
  assert.equal(c.exp - c.iat, 120);
  assert.equal(c.nbf, c.iat);
  assert.match(c.jti, /^[0-9a-f]{20}$/);
  assert.equal(c.name, 'Ada Lovelace');
  assert.equal(c.org_role, 'admin');
  assert.equal(c.seats, 3);
  assert.equal(headerOf(jwt).alg, 'RS256');
  const user = await dev.httpClient(jwt).mutation(api.getOrCreate, {});
  assert.equal(user.name, 'Ada Lovelace');
  assert.equal(user.identity.org_role, 'admin');
});

test('dojo token refuses a ttl over a day and a registered claim', async () => {
  const long = await dojoCli(['token', '--sub', 'u', '--ttl', '86401'], { cwd: dev.dir });
  assert.equal(long.code, 2);
  assert.match(long.stderr, /--ttl/);
  const exp = await dojoCli(['token', '--sub', 'u', '--claim', 'exp=1'], { cwd: dev.dir });
  assert.equal(exp.code, 1);
  assert.match(exp.stderr, /exp is set by dojo token itself/);
});

test('a token signed by a different key is refused, with the same kid or another', async () => {
  const good = await token(['--sub', 'user_3']);
  const { kid } = headerOf(good);
  const { privateKey } = await jose.generateKeyPair('RS256');
  const claims = claimsOf(good);
  for (const header of [{ alg: 'RS256', typ: 'JWT', kid }, { alg: 'RS256', typ: 'JWT', kid: 'someone-else' }]) {
    const forged = await new jose.SignJWT(claims).setProtectedHeader(header).sign(privateKey);
    const res = await callWithToken(dev, forged);
    assert.equal(res.status, 401, res.text);
    assert.match(res.json.message, header.kid === kid ? /signature/i : /key id/i);
  }
  const [h, p, sig] = good.split('.');
  const i = Math.floor(sig.length / 2);
  const flipped = `${h}.${p}.${sig.slice(0, i)}${sig[i] === 'A' ? 'B' : 'A'}${sig.slice(i + 1)}`;
  await assert.rejects(dev.httpClient(flipped).mutation(api.getOrCreate, {}), /signature/i);
});

test('dojo doctor passes every check against a --dev-auth server', async () => {
  const jwt = await token(['--sub', 'user_4']);
  const r = await dojoCli(['doctor', '--url', dev.url, '--token', jwt], { cwd: dev.dir });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /built-in issuer/);
  assert.doesNotMatch(r.stdout, /\u2717/);
});

test('dojo token without dojo dev --dev-auth says to start it', async () => {
  const r = await dojoCli(['token', '--sub', 'user_1'], { cwd: freshDir('dojo-notoken-') });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /start `dojo dev --dev-auth` first/);
  assert.equal(r.stdout, '');
});

test('a restart reuses the key; a stored CLERK_ISSUER_URL wins with a warning until removed', async () => {
  const cwd = freshDir('dojo-devauth-restart-');
  const first = await startDevAuth(cwd);
  const kid = (await first.http('GET', JWKS)).json.keys[0].kid;
  const set = await dojoCli(['env', 'set', 'CLERK_ISSUER_URL', 'https://verb-noun-00.clerk.accounts.dev', '--url', first.url], { cwd });
  assert.equal(set.code, 0, set.stderr);
  await first.stop();

  const second = await startDevAuth(cwd);
  assert.equal((await second.http('GET', JWKS)).json.keys[0].kid, kid, 'the same key, the same kid');
  assert.match(second.proc.stdoutText, /reusing/);
  assert.match(second.proc.stdoutText, /dojo env remove CLERK_ISSUER_URL/);
  assert.match(second.proc.stderrText, /--dev-auth tokens will be refused/);
  const jwt = await token(['--sub', 'user_5'], cwd);
  const refused = await callWithToken(second, jwt);
  assert.equal(refused.status, 401, refused.text);
  assert.match(refused.json.message, /CLERK_ISSUER_URL/);

  const removed = await dojoCli(['env', 'remove', 'CLERK_ISSUER_URL', '--url', second.url], { cwd });
  assert.equal(removed.code, 0, removed.stderr);
  const accepted = await callWithToken(second, jwt);
  assert.equal(accepted.status, 200, accepted.text);
  assert.equal(accepted.json.value.tokenIdentifier, `${second.url}|user_5`);
  await second.stop();
});

test('dojo serve never serves the issuer documents', async () => {
  const serve = await startDojo({ dir: dev.dir, env: { CLERK_ISSUER_URL: null } });
  servers.push(serve);
  for (const p of [DISCOVERY, JWKS]) {
    const res = await serve.http('GET', p);
    assert.equal(res.status, 404, `${p}: ${res.text}`);
  }
  const serveHelp = await dojoCli(['serve', '--help']);
  assert.doesNotMatch(serveHelp.stdout, /dev-auth/);
  const flag = await dojoCli(['serve', '--dev-auth', '--listen', '127.0.0.1:0']);
  assert.equal(flag.code, 2, 'dojo serve has no --dev-auth flag');
  await serve.stop();
});
