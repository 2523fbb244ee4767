// worker.test.mjs — `dojo worker` (api.md §10) against a real server, with
// the real convex client watching the runs: a run becomes a real PNG made by
// examples/worker/render-png.sh and its subscriber sees the output's URL; a
// failing command refunds the user with its stderr line; a command that
// hangs is killed (with its process group) at --timeout; a worker SIGKILLed
// mid-run loses its lease and a second worker completes the run, once, with
// one charge; SIGTERM lets the running command finish and claims nothing
// more. And the worker key (WORKER_KEY) is refused everywhere but the
// worker's functions and uploads.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, test } from 'node:test';
import { ConvexClient } from 'convex/browser';
import WebSocket from 'ws';

import { allPages, api, rejectsWith, signUp } from './lib/app.mjs';
import { checkAfterEach, DojoProcess, startDojo, waitFor } from './lib/dojo.mjs';
import { filesApi, getFile, postWithKey, sha256, storageDocs } from './lib/files.mjs';
import { startIssuer } from './lib/issuer.mjs';
import { RawSyncClient } from './lib/sync_raw.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const RENDER = path.resolve(here, '../../examples/worker/render-png.sh');
const WORKER_KEY = `wk-${randomBytes(24).toString('hex')}`;
const PNG_MAGIC = Buffer.from('89504e470d0a1a0a', 'hex');

let issuer;
let dojo;
const workers = new Set();
checkAfterEach(() => dojo);

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer, env: { SIGNUP_CREDITS: '10', WORKER_KEY, MAX_ATTEMPTS: '3' } });
});
// A worker a failed test left running would claim the next test's runs.
afterEach(async () => {
  for (const w of workers) if (!w.exited) await w.stopWith('SIGKILL');
});
after(async () => {
  await issuer?.close();
});

/** Starts `dojo worker` against dojo with the worker key; resolves once connected. */
async function startWorker(args, { env = {}, key = WORKER_KEY } = {}) {
  const w = new DojoProcess(['worker', '--url', dojo.url, ...args], {
    env: { DOJO_WORKER_KEY: key, ...env },
  });
  workers.add(w);
  await w.waitForOutput(/connected to/);
  return w;
}

/** A ConvexClient over the WebSocket, signed in as user. */
async function wsClient(user) {
  const ws = new ConvexClient(dojo.url, { webSocketConstructor: WebSocket, logger: false, unsavedChangesWarning: false });
  await new Promise((resolve) => ws.setAuth(async () => user.token, (ok) => ok && resolve()));
  return ws;
}

const createRun = (user, prompt = 'a red fox in the snow') =>
  user.client.mutation(api.createRun, { input: { model: 'flux', prompt } });

/** Waits until the run (read as its owner) satisfies pick. */
function runWhen(user, id, pick, what) {
  return waitFor(
    async () => {
      const run = await user.client.query(api.getRun, { id });
      return pick(run) ? run : null;
    },
    { timeoutMs: 20_000, what },
  );
}

/** The pids of the processes whose environment holds TEST_MARK=marker:
 *  a command and every process it started (they inherit it). */
function processesWith(marker) {
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`).includes(`TEST_MARK=${marker}\0`)) pids.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}

async function ledgerOf(user, runId) {
  const rows = (await allPages(user.client, api.transactions)).rows;
  return rows.filter((t) => t.runId === runId).map((t) => `${t.kind} ${t.amount}`).sort();
}

describe('dojo worker', () => {
  test('a queued run becomes a PNG; a subscriber sees its URL, whose bytes are that PNG', async () => {
    const worker = await startWorker(['--exec', RENDER, '--worker-id', 'render-1']);
    const a = await signUp(dojo, issuer);
    const ws = await wsClient(a);
    const id = await createRun(a, 'a cat in a karate gi');
    const seen = [];
    const completed = new Promise((resolve) => {
      const stop = ws.onUpdate(api.getRun, { id }, (run) => {
        seen.push(run?.status);
        if (run?.status === 'completed') {
          stop();
          resolve(run);
        }
      });
    });
    const run = await completed;
    await ws.close();
    assert.equal(run.workerId, 'render-1');
    assert.match(run.output, new RegExp(`^${dojo.url}/api/storage/[0-9a-z]{32}$`));
    assert.equal(run.output, `${dojo.url}/api/storage/${run.outputStorageId}`);
    const file = await getFile(run.output);
    assert.equal(file.status, 200);
    assert.equal(file.headers.get('content-type'), 'image/png');
    assert.ok(file.bytes.subarray(0, 8).equals(PNG_MAGIC), 'the bytes are a PNG');
    const meta = await a.client.query(filesApi.getMetadata, { storageId: run.outputStorageId });
    assert.equal(meta.sha256, sha256(file.bytes));
    assert.equal(meta.owner, undefined, "a worker's upload has no owner");
    assert.equal(await a.client.query(filesApi.getUrl, { storageId: run.outputStorageId }), run.output);
    assert.deepEqual(await ledgerOf(a, id), ['run -1']);
    await waitFor(() => /run \S+ \(model flux\): completed with file \S+ in [\d.]+ s/.test(worker.stderrText), {
      what: 'one log line for the run',
    });
    await worker.stop();
  });

  test('a failing command fails the run with its stderr line, and the user is refunded', async () => {
    const cmd = 'echo "loading weights" >&2; echo "CUDA out of memory (tried 2 GiB)" >&2; exit 3';
    const worker = await startWorker(['--exec', cmd]);
    const a = await signUp(dojo, issuer);
    const before = (await a.client.query(api.me, {})).credits;
    const id = await createRun(a);
    const run = await runWhen(a, id, (r) => r.status === 'failed', 'the run to fail');
    assert.equal(run.error, 'The command exited with status 3: CUDA out of memory (tried 2 GiB)');
    assert.equal((await a.client.query(api.me, {})).credits, before);
    assert.deepEqual(await ledgerOf(a, id), ['refund 1', 'run -1']);
    await worker.stop();
  });

  test('a command that exits 0 without an output fails the run, naming the cause', async () => {
    const worker = await startWorker(['--exec', 'echo nothing here']);
    const a = await signUp(dojo, issuer);
    const id = await createRun(a);
    const run = await runWhen(a, id, (r) => r.status === 'failed', 'the run to fail');
    assert.match(run.error, /wrote no file to \$DOJO_OUTPUT and printed no https:\/\/ URL/);
    await worker.stop();
  });

  test('a command may print an https:// URL instead of writing a file', async () => {
    const worker = await startWorker(['--exec', 'cat >/dev/null; echo working; echo https://cdn.example.com/$DOJO_RUN_ID.png']);
    const a = await signUp(dojo, issuer);
    const id = await createRun(a);
    const run = await runWhen(a, id, (r) => r.status === 'completed', 'the run to complete');
    assert.equal(run.output, `https://cdn.example.com/${id}.png`);
    assert.equal(run.outputStorageId, undefined);
    await worker.stop();
  });

  test('a command that hangs is killed with its process group at --timeout', async () => {
    const marker = `hang-${randomBytes(4).toString('hex')}`;
    // A background child too: the whole group goes.
    const cmd = `export TEST_MARK=${marker}; sleep 300 & sleep 301`;
    const worker = await startWorker(['--exec', cmd, '--timeout', '3']);
    const a = await signUp(dojo, issuer);
    const id = await createRun(a);
    await waitFor(() => processesWith(marker).length >= 2, { what: 'the command to start' });
    const run = await runWhen(a, id, (r) => r.status === 'failed', 'the run to time out');
    assert.match(run.error, /^Timed out after 3 s \(the command's process group was killed\)/);
    await waitFor(() => processesWith(marker).length === 0, { what: 'the process group to be gone' });
    assert.deepEqual(await ledgerOf(a, id), ['refund 1', 'run -1']);
    await worker.stop();
  });

  test('a worker killed mid-run loses the lease; a second worker completes the run once, one charge', async () => {
    const marker = `slow-${randomBytes(4).toString('hex')}`;
    const first = await startWorker(['--exec', `export TEST_MARK=${marker}; sleep 60`, '--lease', '3', '--worker-id', 'doomed']);
    const a = await signUp(dojo, issuer);
    const id = await createRun(a);
    await runWhen(a, id, (r) => r.status === 'processing' && r.workerId === 'doomed', 'the first claim');
    await first.stopWith('SIGKILL');
    // Its command lives on in its own session, orphaned: it can report nothing.
    const second = await startWorker(['--exec', RENDER, '--worker-id', 'rescuer']);
    const run = await runWhen(a, id, (r) => r.status === 'completed', 'the second worker to complete it');
    assert.equal(run.workerId, 'rescuer');
    assert.equal(run.attempts, 2);
    assert.ok(run.outputStorageId);
    assert.deepEqual(await ledgerOf(a, id), ['run -1'], 'one charge, no refund');
    assert.equal((await storageDocs(dojo)).filter((d) => d._id === run.outputStorageId).length, 1);
    await second.stop();
    for (const pid of processesWith(marker)) process.kill(pid, 'SIGKILL'); // the orphan this test made
  });

  test('SIGTERM: the running command finishes, nothing more is claimed, the worker exits 0', async () => {
    const worker = await startWorker(['--exec', `sleep 1.5; ${RENDER}`]);
    const a = await signUp(dojo, issuer);
    const id = await createRun(a);
    await runWhen(a, id, (r) => r.status === 'processing', 'the claim');
    worker.child.kill('SIGTERM');
    const later = await createRun(a, 'after the signal');
    const exit = await worker.exitPromise;
    assert.deepEqual(exit, { code: 0, signal: null }, worker.stderrText);
    assert.equal((await a.client.query(api.getRun, { id })).status, 'completed');
    assert.equal((await a.client.query(api.getRun, { id: later })).status, 'queued');
    assert.match(worker.stderrText, /claiming nothing more; 1 run may finish/);
    // Leave the queue empty for the tests after this one.
    await a.client.mutation(api.cancelRun, { id: later });
  });

  test('a wrong key stops the worker with a message saying so', async () => {
    const w = new DojoProcess(['worker', '--url', dojo.url, '--exec', RENDER], {
      env: { DOJO_WORKER_KEY: 'not-the-key-not-the-key-not-the-key' },
    });
    workers.add(w);
    const exit = await w.exitPromise;
    assert.equal(exit.code, 1);
    assert.match(w.stderrText, /dojo worker: the server refused the worker key/);
  });
});

describe('the worker key', () => {
  const WORKER_FUNCTIONS = ['runs:claim', 'runs:queue', 'runs:heartbeat', 'runs:complete', 'runs:fail'];

  test('calls the worker functions: claim, queue, heartbeat, complete, fail', async () => {
    const a = await signUp(dojo, issuer);
    const id = await createRun(a);
    const w = dojo.httpClient();
    w.setAdminAuth(WORKER_KEY);
    const queue = await w.query(filesApi.queue, {});
    assert.ok(queue.queued >= 1);
    assert.equal(typeof queue.oldestQueuedAt, 'number');
    const claimed = await w.mutation(api.claim, { workerId: 'k1', leaseSeconds: 30 });
    assert.equal(claimed._id, id);
    assert.equal(await w.mutation(api.heartbeat, { id, workerId: 'k1', leaseSeconds: 30 }), null);
    const up = await postWithKey(dojo, WORKER_KEY, Buffer.concat([PNG_MAGIC, randomBytes(64)]));
    assert.equal(up.status, 200);
    assert.equal(await w.mutation(api.complete, { id, workerId: 'k1', storageId: up.json.storageId }), null);
    const id2 = await createRun(a);
    await w.mutation(api.claim, { workerId: 'k1' });
    assert.equal(await w.mutation(api.fail, { id: id2, workerId: 'k1', error: 'nope' }), null);
    assert.deepEqual(await ledgerOf(a, id2), ['refund 1', 'run -1']);
    // A user cannot read the queue.
    await rejectsWith(a.client.query(filesApi.queue, {}), { code: 'FORBIDDEN' });
  });

  test('every other function answers FORBIDDEN, over HTTP and over the WebSocket', async () => {
    const list = await dojo.http('GET', '/dashboard/api/functions', { headers: { Authorization: `Convex ${dojo.adminKey}` } });
    const all = list.json.functions.map((f) => ({ path: f.path, kind: f.kind }));
    const system = ['_system:tables', '_system:browse', '_system:envSet', '_system:envGet', '_system:envList',
      '_system:envRemove', '_system:health', '_system:storageStore', '_system:storageGet', '_system:storageList',
      '_system:uploadTokenCheck', '_system:cleanupUploadTokens', '_system:cleanupSessionRequests', 'runs:expireLeases'];
    const others = [...all.map((f) => f.path), ...system].filter((p) => !WORKER_FUNCTIONS.includes(p));
    assert.ok(others.includes('users:me') && others.includes('admin:grantCredits') && others.includes('files:getUrl'));
    for (const p of others) {
      const res = await dojo.http('POST', '/api/function', {
        headers: { Authorization: `Convex ${WORKER_KEY}` },
        body: { path: p, args: {}, format: 'json' },
      });
      assert.equal(res.status, 200, `${p}: ${res.text}`);
      assert.equal(res.json.status, 'error', `${p} ran with the worker key`);
      assert.equal(res.json.errorData?.code, 'FORBIDDEN', `${p}: ${res.text}`);
    }
    // The typed routes and a query batch say the same.
    const q = await dojo.http('POST', '/api/query', { headers: { Authorization: `Convex ${WORKER_KEY}` }, body: { path: 'users:me', args: {} } });
    assert.equal(q.json.errorData.code, 'FORBIDDEN');
    const m = await dojo.http('POST', '/api/run/admin/grantCredits', { headers: { Authorization: `Convex ${WORKER_KEY}` }, body: { args: { email: 'x@y.z', amount: 5 } } });
    assert.equal(m.json.errorData.code, 'FORBIDDEN');
    const batch = await dojo.http('POST', '/api/query_batch', {
      headers: { Authorization: `Convex ${WORKER_KEY}` },
      body: { queries: [{ path: 'users:me', args: {} }, { path: 'runs:queue', args: {} }] },
    });
    assert.equal(batch.json.results[0].errorData.code, 'FORBIDDEN');
    assert.equal(batch.json.results[1].status, 'success');
    const acting = await dojo.http('POST', '/api/query', {
      headers: { Authorization: `Convex ${WORKER_KEY}:${Buffer.from('{"tokenIdentifier":"x|y"}').toString('base64')}` },
      body: { path: 'users:me', args: {} },
    });
    assert.equal(acting.status, 403);

    // Over the WebSocket: a subscription and a mutation.
    const c = await RawSyncClient.connect(dojo.url);
    c.authenticateAdmin(WORKER_KEY);
    c.add(0, 'users:me', {});
    c.add(1, 'runs:queue', {});
    await c.waitFor(() => c.updatesFor(0).length && c.updatesFor(1).length, { what: 'both queries' });
    const me = c.updatesFor(0).at(-1);
    assert.equal(me.type, 'QueryFailed');
    assert.equal(me.errorData.code, 'FORBIDDEN');
    assert.equal(c.updatesFor(1).at(-1).type, 'QueryUpdated');
    const r = await c.mutation('users:getOrCreate', {});
    assert.equal(r.success, false);
    assert.equal(r.errorData.code, 'FORBIDDEN');
    c.close();
  });

  test('the dashboard refuses it: 403 FORBIDDEN', async () => {
    for (const p of ['/dashboard/api/functions', '/dashboard/api/logs']) {
      const res = await dojo.http('GET', p, { headers: { Authorization: `Convex ${WORKER_KEY}` } });
      assert.equal(res.status, 403, p);
      assert.equal(res.json.code, 'FORBIDDEN');
    }
  });

  test('WORKER_KEY must be long enough, and a removed key works no more', async () => {
    const r = await dojo.cli(['env', 'set', 'WORKER_KEY', 'short']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /WORKER_KEY must be 32 to 256 characters/);
    const other = `wk2-${randomBytes(20).toString('hex')}`;
    assert.equal((await dojo.cli(['env', 'set', 'WORKER_KEY', other])).code, 0);
    try {
      await waitFor(async () => (await postWithKey(dojo, other, PNG_MAGIC)).status === 200, { what: 'the new key' });
      assert.equal((await postWithKey(dojo, WORKER_KEY, PNG_MAGIC)).status, 401, 'the process variable is shadowed');
    } finally {
      await dojo.cli(['env', 'remove', 'WORKER_KEY']);
    }
    await waitFor(async () => (await postWithKey(dojo, WORKER_KEY, PNG_MAGIC)).status === 200, { what: 'the old key again' });
  });
});
