// cli.test.mjs — the dojo command line (api.md §7) against real servers:
// `dojo run` and `dojo env` as an admin would use them, their errors (exit
// non-zero, a message a person can act on), `dojo serve` stopping cleanly on
// SIGTERM after finishing a request in flight, `dojo dev` creating and then
// reusing ./.dojo, and --help on every command.

import assert from 'node:assert/strict';
import { statSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  checkAfterEach,
  dojoCli,
  freshDir,
  makeFunctionReference as ref,
  startDev,
  startDojo,
  waitFor,
} from './lib/dojo.mjs';
import { newSubject, startIssuer } from './lib/issuer.mjs';

const api = { getOrCreate: ref('users:getOrCreate'), me: ref('users:me') };

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

/** A port on 127.0.0.1 with nothing listening. */
async function closedPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('dojo run', () => {
  test('dojo run users:me runs as admin and prints null', async () => {
    const r = await dojo.cli(['run', 'users:me']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'null');
  });

  test('dojo run admin:grantCredits with JSON args prints the result as JSON', async () => {
    const email = `grant-${newSubject()}@example.com`;
    const user = await dojo.httpClient(await issuer.token({ email })).mutation(api.getOrCreate, {});
    const r = await dojo.cli(['run', 'admin:grantCredits', JSON.stringify({ email, amount: 100 })]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.userId, user._id);
    assert.equal(result.balance, 100);
    assert.equal(typeof result.transactionId, 'string');
  });

  test('dojo run of an unknown function exits non-zero naming the function', async () => {
    const r = await dojo.cli(['run', 'users:doesNotExist']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /users:doesNotExist/);
    assert.equal(r.stdout, '');
  });

  test('dojo run with a wrong admin key exits non-zero naming the admin key', async () => {
    const r = await dojoCli(['run', 'users:me', '--url', dojo.url, '--admin-key', 'not-the-key']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /admin key/i);
  });

  test('dojo run with no server at --url exits non-zero saying it cannot reach it', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const r = await dojoCli(['run', 'users:me', '--url', url, '--admin-key', 'k']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cannot reach|server running/i);
    assert.ok(r.stderr.includes(url), r.stderr);
  });
});

describe('dojo env', () => {
  test('set, get, list and remove round-trip a deployment variable', async () => {
    const set = await dojo.cli(['env', 'set', 'GREETING_TEXT', 'hello world']);
    assert.equal(set.code, 0, set.stderr);

    const get = await dojo.cli(['env', 'get', 'GREETING_TEXT']);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, 'hello world\n');

    const list = await dojo.cli(['env', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(list.stdout.split('\n').includes('GREETING_TEXT=hello world'), list.stdout);

    const remove = await dojo.cli(['env', 'remove', 'GREETING_TEXT']);
    assert.equal(remove.code, 0, remove.stderr);

    const gone = await dojo.cli(['env', 'get', 'GREETING_TEXT']);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /GREETING_TEXT is not set/);
    const listAfter = await dojo.cli(['env', 'list']);
    assert.ok(!listAfter.stdout.includes('GREETING_TEXT'), listAfter.stdout);
  });

  test('dojo env set NAME=VALUE stores VALUE; removing an unset name succeeds', async () => {
    const set = await dojo.cli(['env', 'set', 'Mixed_Case=a=b']);
    assert.equal(set.code, 0, set.stderr);
    const get = await dojo.cli(['env', 'get', 'Mixed_Case']);
    assert.equal(get.stdout, 'a=b\n', 'only the first = splits');
    assert.equal((await dojo.cli(['env', 'remove', 'Mixed_Case'])).code, 0);
    const again = await dojo.cli(['env', 'remove', 'Mixed_Case']);
    assert.equal(again.code, 0, again.stderr);
  });

  test('dojo env set refuses an invalid value with a readable message', async () => {
    const r = await dojo.cli(['env', 'set', 'SIGNUP_CREDITS', 'lots']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SIGNUP_CREDITS must be an integer/);
    const get = await dojo.cli(['env', 'get', 'SIGNUP_CREDITS']);
    assert.notEqual(get.code, 0, 'nothing was stored');
  });
});

describe('dojo serve', () => {
  test('exits 0 on SIGTERM after finishing a request in flight', async () => {
    const server = await startDojo({ issuer });
    servers.push(server);
    // The request waits for the issuer's keys, which the issuer holds back.
    const release = issuer.hold(issuer.jwksPath);
    const jwksBefore = issuer.requestCount();
    const inFlight = server.http('POST', '/api/query', {
      headers: { Authorization: `Bearer ${await issuer.token({})}` },
      body: { path: 'users:me', args: {} },
    });
    try {
      await waitFor(() => issuer.requestCount() > jwksBefore, { what: 'the JWKS request' });
      server.proc.child.kill('SIGTERM');
      await server.proc.waitForOutput(/received SIGTERM/);
      assert.equal(server.proc.exited, null, 'still running while a request is in flight');
    } finally {
      release();
    }
    const res = await inFlight;
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { status: 'success', value: null });
    await server.proc.exitPromise;
    server.proc.assertCleanExit();
    await server.verifyDb();
  });
});

describe('dojo serve refuses', () => {
  test('a SQLite database another server has open, naming the process', async () => {
    const r = await dojoCli(['serve', '--db', dojo.dbUrl, '--listen', '127.0.0.1:0'], { timeoutMs: 10_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`open in another process \\(pid ${dojo.proc.pid}\\)`));
    assert.match(r.stderr, /PostgreSQL/);
  });

  test('numbers that are not numbers, and an admin key over 256 bytes', async () => {
    const dbUrl = `sqlite:${path.join(freshDir('dojo-flags-'), 'x.db')}`;
    for (const [args, message] of [
      [['--readers', 'two'], /--readers wants a number/],
      [['--max-body-bytes', '8MiB'], /--max-body-bytes wants a number/],
      [['--admin-key', 'k'.repeat(257)], /admin key is longer than 256 bytes/],
    ]) {
      const r = await dojoCli(['serve', '--db', dbUrl, '--listen', '127.0.0.1:0', ...args], { timeoutMs: 10_000 });
      assert.notEqual(r.code, 0, `${args.join(' ')} was accepted`);
      assert.match(r.stderr, message);
    }
  });
});

describe('dojo dev', () => {
  test('creates ./.dojo with a private admin key, prints the URL, the key and the auth setup', async () => {
    const cwd = freshDir('dojo-dev-');
    const dev = await startDev({ cwd, env: { CLERK_ISSUER_URL: null } });
    servers.push(dev);
    const keyFile = path.join(cwd, '.dojo', 'admin_key');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.equal(readFileSync(keyFile, 'utf8').trim(), dev.adminKey);
    assert.match(dev.proc.stdoutText, /CLERK_ISSUER_URL/);
    assert.match(dev.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    // The printed URL and key work.
    const r = await dojoCli(['run', 'users:me', '--url', dev.url], { cwd });
    assert.equal(r.code, 0, `the key is found in ./.dojo/admin_key: ${r.stderr}`);
    assert.equal(r.stdout.trim(), 'null');
    await dev.stop();
  });

  test('a second dojo dev in the same folder reuses the key and keeps the data', async () => {
    const cwd = freshDir('dojo-dev-');
    const first = await startDev({ cwd, env: { CLERK_ISSUER_URL: null } });
    servers.push(first);
    const set = await dojoCli(['env', 'set', 'CLERK_ISSUER_URL', issuer.url, '--url', first.url], { cwd });
    assert.equal(set.code, 0, set.stderr);
    const sub = newSubject();
    const user = await first.httpClient(await issuer.token({ sub })).mutation(api.getOrCreate, {});
    await first.stop();

    const second = await startDev({ cwd, env: { CLERK_ISSUER_URL: null } });
    servers.push(second);
    assert.equal(second.adminKey, first.adminKey);
    assert.match(second.proc.stdoutText, /reusing/i);
    const me = await second.httpClient(await issuer.token({ sub })).query(api.me, {});
    assert.equal(me?._id, user._id, 'the user and the stored CLERK_ISSUER_URL were kept');
    await second.stop();
  });
});

test('every command answers --help with exit 0', async () => {
  const top = await dojoCli(['--help']);
  assert.equal(top.code, 0, top.stderr);
  const commands = [...top.stdout.matchAll(/^ {2}([a-z][a-z-]*) {2,}/gm)].map((m) => m[1]);
  for (const expected of ['dev', 'serve', 'run', 'env', 'verify']) assert.ok(commands.includes(expected), expected);
  for (const command of commands) {
    const r = await dojoCli([command, '--help']);
    assert.equal(r.code, 0, `dojo ${command} --help exited ${r.code}: ${r.stderr}`);
    assert.match(r.stdout, /Usage: dojo/, `dojo ${command} --help`);
  }
});
