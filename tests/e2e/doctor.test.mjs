// doctor.test.mjs — `dojo doctor` (api.md §7): one line per check, ✓ or ✗,
// the fix under each ✗, exit 0 only when everything passes. One test per
// failing check, each asserting the line of the check that fails and the fix
// a person needs: no issuer, an unreachable issuer, a server that is down,
// and a token that is expired, for another audience, from another issuer,
// signed by an unknown key, or tampered with.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { checkAfterEach, dojoCli, startDojo } from './lib/dojo.mjs';
import { startIssuer, tamperPayload } from './lib/issuer.mjs';

const PASS = '\u2713';
const FAIL = '\u2717';

let issuer;
let dojo; // CLERK_ISSUER_URL = the test issuer
let bare; // no issuer at all
let lost; // an issuer nobody answers at
const servers = [];

/** A port on 127.0.0.1 with nothing listening. */
async function closedPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer });
  bare = await startDojo();
  lost = await startDojo({ env: { CLERK_ISSUER_URL: `http://127.0.0.1:${await closedPort()}` } });
  servers.push(dojo, bare, lost);
});
checkAfterEach(() => servers);
after(() => issuer?.close());

/** Runs doctor against server (its URL and admin key); {code, stdout, lines}. */
async function doctor(server, args = []) {
  const r = await server.cli(['doctor', ...args]);
  assert.equal(r.stderr.includes('AddressSanitizer'), false, r.stderr);
  return { ...r, out: `${r.stdout}\n${r.stderr}` };
}

/** The line of one check, and the fix printed under it. */
function checkLine(stdout, name) {
  const lines = stdout.split('\n');
  const i = lines.findIndex((l) => new RegExp(`^  [${PASS}${FAIL}-] ${name}\\b`).test(l));
  assert.notEqual(i, -1, `no "${name}" line in:\n${stdout}`);
  const fix = lines[i + 1]?.trim().startsWith('fix:') ? lines[i + 1].trim() : '';
  return { line: lines[i], ok: lines[i].startsWith(`  ${PASS}`), failed: lines[i].startsWith(`  ${FAIL}`), fix };
}

function assertFails(r, name, { line, fix }) {
  assert.equal(r.code, 1, `doctor must exit 1:\n${r.out}`);
  const c = checkLine(r.stdout, name);
  assert.ok(c.failed, `the ${name} check must fail:\n${r.stdout}`);
  if (line) assert.match(c.line, line, r.stdout);
  if (fix) assert.match(c.fix, fix, r.stdout);
}

test('all green: exit 0 and a ✓ for every check, token included', async () => {
  const token = await issuer.token({ email: 'ok@example.com' });
  const r = await doctor(dojo, ['--token', token]);
  assert.equal(r.code, 0, r.out);
  for (const name of ['server', 'issuer', 'issuer URL', 'discovery', 'JWKS', 'token', 'accepted']) {
    assert.ok(checkLine(r.stdout, name).ok, `${name} passes:\n${r.stdout}`);
  }
  assert.doesNotMatch(r.stdout, new RegExp(FAIL));
  assert.match(checkLine(r.stdout, 'JWKS').line, /3 usable signing keys/);
  assert.match(checkLine(r.stdout, 'issuer').line, new RegExp(issuer.url));
});

test('the issuer is read from the deployment when it is stored there, and doctor says so', async () => {
  const set = await dojo.cli(['env', 'set', 'CLERK_ISSUER_URL', issuer.url]);
  assert.equal(set.code, 0, set.stderr);
  try {
    const r = await doctor(dojo);
    assert.equal(r.code, 0, r.out);
    assert.match(checkLine(r.stdout, 'issuer').line, /stored in the deployment/);
  } finally {
    await dojo.cli(['env', 'remove', 'CLERK_ISSUER_URL']);
  }
});

test('no issuer set: the issuer check fails and says to set CLERK_ISSUER_URL', async () => {
  const r = await doctor(bare);
  assertFails(r, 'issuer', { line: /CLERK_ISSUER_URL/, fix: /dojo env set CLERK_ISSUER_URL https:\/\// });
  assert.match(checkLine(r.stdout, 'discovery').line, /skipped/);
  assert.ok(checkLine(r.stdout, 'server').ok, 'the server itself is fine');
});

test('unreachable issuer: discovery fails and says what CLERK_ISSUER_URL must be', async () => {
  const r = await doctor(lost);
  assertFails(r, 'discovery', { line: /openid-configuration/, fix: /Clerk Frontend API URL/ });
  assert.ok(checkLine(r.stdout, 'issuer').ok, r.stdout);
  assert.match(checkLine(r.stdout, 'JWKS').line, /skipped/);
});

test('server down: the server check fails and says to start it', async () => {
  const r = await dojoCli(['doctor', '--url', `http://127.0.0.1:${await closedPort()}`]);
  assertFails({ ...r, out: r.stdout + r.stderr }, 'server', { fix: /dojo dev/ });
});

test('expired token: names the expiry and says to fetch a fresh token', async () => {
  const now = Math.floor(Date.now() / 1000);
  const token = await issuer.token({}, { iat: now - 7200, exp: now - 3600 });
  const r = await doctor(dojo, ['--token', token]);
  assertFails(r, 'token', { line: /expired/, fix: /fetch a fresh token/ });
  assert.match(checkLine(r.stdout, 'token').fix, /clock/);
  assert.ok(checkLine(r.stdout, 'JWKS').ok, 'the setup itself is fine');
});

test('audience not convex: says the Clerk JWT template must be named "convex"', async () => {
  const token = await issuer.token({}, { aud: 'web' });
  const r = await doctor(dojo, ['--token', token]);
  assertFails(r, 'token', { line: /audience/, fix: /Clerk JWT template must be named "convex"/ });
});

test('issuer mismatch: says CLERK_ISSUER_URL must be the token\u2019s iss', async () => {
  const other = 'https://other-instance-42.clerk.accounts.dev';
  const token = await issuer.token({}, { iss: other });
  const r = await doctor(dojo, ['--token', token]);
  assertFails(r, 'token', { line: /issuer/, fix: new RegExp(`CLERK_ISSUER_URL must be ${other}`) });
});

test('unknown kid: says the token comes from another Clerk instance or rotated keys', async () => {
  const kid = await issuer.addKey({ publish: false, makeCurrent: false });
  const token = await issuer.token({}, { kid });
  const r = await doctor(dojo, ['--token', token]);
  assertFails(r, 'token', { line: new RegExp(`unknown key id.*${kid}`), fix: /another Clerk instance.*rotated/ });
});

test('bad signature: names the signature check', async () => {
  const token = tamperPayload(await issuer.token({ sub: 'user_honest' }), (c) => {
    c.sub = 'user_admin';
  });
  const r = await doctor(dojo, ['--token', token]);
  assertFails(r, 'token', { line: /signature/, fix: /altered/ });
  assertFails(r, 'accepted', { line: /refuses the token.*signature/ });
});

test('unsupported alg: an HMAC token is refused by name', async () => {
  const token = await issuer.token({}, { alg: 'HS256' });
  const r = await doctor(dojo, ['--token', token]);
  assertFails(r, 'token', { line: /algorithm check fails.*HS256/, fix: /RS256/ });
});
