// fanout.mjs — pushes to many WebSocket sync sessions at once.
//
//   fanout N:    N sessions, all signed in as the same user, all subscribed to
//                users:me; one admin:grantCredits to that user; measures, per
//                session, the time from sending the grant until that session
//                receives the Transition carrying the new balance
//                (p50/p99/max), and the server's own stamp (serverTs) of the
//                last push. All N subscriptions are identical, so dojo runs
//                the query once and sends N copies.
//   precision N: N sessions, each signed in as its own user and subscribed to
//                its own users:me; one grant to one of them; counts the
//                sessions that receive any Transition in the next second
//                (exactly 1 is right: the others' reads do not intersect the
//                write).
//
// Run through bench/run.sh (`bash bench/run.sh fanout` / `... precision`),
// which starts dojo and the issuer; by hand:
//   node bench/fanout.mjs fanout    DOJO_URL ISSUER_URL ADMIN_KEY N
//   node bench/fanout.mjs precision DOJO_URL ISSUER_URL ADMIN_KEY N USERS_FILE
// (USERS_FILE from bench/lib/users.mjs: "<token>\t<userId>\t<subject>" lines).
// Prints one JSON object on stdout; progress goes to stderr.

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { BareSession, updatedValue } from './lib/bare_sync.mjs';

const [mode, url, issuer, adminKey, nText, usersFile] = process.argv.slice(2);
if (!['fanout', 'precision'].includes(mode) || !nText) {
  console.error('usage: node fanout.mjs fanout|precision DOJO_URL ISSUER_URL ADMIN_KEY N [USERS_FILE]');
  process.exit(2);
}
const N = Number(nText);
const OPEN_CONCURRENCY = 200;
const READY_TIMEOUT_MS = 120_000;
const PUSH_TIMEOUT_MS = 30_000;
const QUIET_MS = 1000; // how long precision waits for pushes that should not come
const QUERY_ID = 0;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A deadline that does not keep the process alive once the work is done.
const deadline = (ms) => new Promise((r) => setTimeout(() => r('timeout'), ms).unref());

async function post(route, auth, body) {
  const res = await fetch(`${url}${route}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: auth },
    body: JSON.stringify({ ...body, format: 'json' }),
  });
  const out = await res.json();
  if (out.status !== 'success') throw new Error(`${body.path}: ${JSON.stringify(out)}`);
  return out.value;
}

/** Opens one session per token, subscribed to users:me; resolves when every
 *  session has its first value. */
async function openSessions(tokens) {
  const sessions = new Array(tokens.length);
  let next = 0;
  const started = performance.now();
  async function worker() {
    while (next < tokens.length) {
      const i = next++;
      const s = await BareSession.open(url);
      s.baseline = undefined;
      const ready = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`session ${i}: no first value (${s.closedWith ?? 'open'})`)), READY_TIMEOUT_MS);
        s.onTransition = (msg) => {
          const v = updatedValue(msg, QUERY_ID);
          if (v === undefined) return;
          if (v === null) return reject(new Error(`session ${i}: users:me is null (token not accepted?)`));
          s.baseline = JSON.stringify(v);
          s.onTransition = null;
          clearTimeout(timer);
          resolve();
        };
      });
      s.authenticate(tokens[i]);
      s.subscribe(QUERY_ID, 'users:me');
      await ready;
      sessions[i] = s;
      if ((i + 1) % 1000 === 0) process.stderr.write(`  · ${i + 1} sessions ready\n`);
    }
  }
  await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, tokens.length) }, worker));
  return { sessions, openMs: performance.now() - started };
}

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const epochMs = () => performance.timeOrigin + performance.now();

if (mode === 'fanout') {
  const sub = `bench_fan_${Date.now().toString(36)}`;
  const token = await (await fetch(`${issuer}/token?sub=${sub}&email=${sub}@bench.example`)).text();
  const user = await post('/api/mutation', `Bearer ${token}`, { path: 'users:getOrCreate', args: {} });
  const { sessions, openMs } = await openSessions(new Array(N).fill(token));
  await sleep(300);

  const latencies = [];
  const serverLags = [];
  const fromCommit = []; // arrival minus the commit's own timestamp (endVersion.ts), same clock
  const sentFromCommit = []; // the server's stamp on the Transition (serverTs) minus the commit's
  let stray = 0;
  const allIn = new Promise((resolve) => {
    let left = N;
    for (const s of sessions) {
      s.onTransition = (msg, arrived) => {
        const v = updatedValue(msg, QUERY_ID);
        if (v === undefined || JSON.stringify(v) === s.baseline) {
          stray++;
          return;
        }
        s.onTransition = null;
        latencies.push(arrived - t0);
        const commitNs = Buffer.from(msg.endVersion.ts, 'base64').readBigUInt64LE(0);
        fromCommit.push(performance.timeOrigin + arrived - Number(commitNs / 1000n) / 1000);
        serverLags.push(Number(BigInt(msg.serverTs) / 1000n) / 1000 - t0Epoch);
        sentFromCommit.push(Number(BigInt(msg.serverTs) - commitNs) / 1e6);
        if (--left === 0) resolve();
      };
    }
  });
  const t0Epoch = epochMs();
  const t0 = performance.now();
  const grantDone = post('/api/mutation', `Convex ${adminKey}`, {
    path: 'admin:grantCredits',
    args: { userId: user._id, amount: 7 },
  }).then(() => performance.now() - t0);
  const timeout = deadline(PUSH_TIMEOUT_MS);
  if ((await Promise.race([allIn, timeout])) === 'timeout') {
    console.error(`fanout: only ${latencies.length} of ${N} sessions got the new value within ${PUSH_TIMEOUT_MS} ms`);
    process.exit(1);
  }
  const grantMs = await grantDone;
  latencies.sort((a, b) => a - b);
  serverLags.sort((a, b) => a - b);
  fromCommit.sort((a, b) => a - b);
  sentFromCommit.sort((a, b) => a - b);
  const lastFromCommit = fromCommit[fromCommit.length - 1];
  for (const s of sessions) s.close();
  console.log(
    JSON.stringify({
      mode,
      sessions: N,
      openMs,
      grantMs,
      p50Ms: pct(latencies, 50),
      p99Ms: pct(latencies, 99),
      maxMs: latencies[latencies.length - 1],
      serverFirstMs: serverLags[0],
      serverLastMs: serverLags[serverLags.length - 1],
      p50FromCommitMs: pct(fromCommit, 50),
      serverP50FromCommitMs: pct(sentFromCommit, 50),
      serverLastFromCommitMs: sentFromCommit[sentFromCommit.length - 1],
      lastFromCommitMs: lastFromCommit,
      deliveriesPerSec: (N * 1000) / lastFromCommit,
      stray,
    }),
  );
} else {
  const lines = readFileSync(usersFile, 'utf8').trim().split('\n').slice(0, N);
  if (lines.length < N) throw new Error(`${usersFile} has ${lines.length} users, need ${N}`);
  const users = lines.map((l) => {
    const [token, userId, subject] = l.split('\t');
    return { token, userId, subject };
  });
  const { sessions, openMs } = await openSessions(users.map((u) => u.token));
  const target = Math.floor(N / 2);
  // The first fetch() of a process is slow (undici starts up): not the grant's.
  // (GET /metrics runs no function, so the re-execution count of f2 stays exact.)
  await (await fetch(`${url}/metrics`)).text();
  await sleep(500);
  const before = sessions.map((s) => s.transitions);
  let targetMs, targetServerMs;
  const targetGotIt = new Promise((resolve) => {
    const s = sessions[target];
    s.onTransition = (msg, arrived) => {
      const v = updatedValue(msg, QUERY_ID);
      if (v !== undefined && JSON.stringify(v) !== s.baseline) {
        targetMs = arrived - t0;
        targetServerMs = Number(BigInt(msg.serverTs) / 1000n) / 1000 - t0Epoch;
        resolve();
      }
    };
  });
  const t0Epoch = epochMs();
  const t0 = performance.now();
  await post('/api/mutation', `Convex ${adminKey}`, {
    path: 'admin:grantCredits',
    args: { userId: users[target].userId, amount: 3 },
  });
  const timeout = deadline(PUSH_TIMEOUT_MS);
  if ((await Promise.race([targetGotIt, timeout])) === 'timeout') {
    console.error(`precision: the granted user's session got no new value within ${PUSH_TIMEOUT_MS} ms`);
    process.exit(1);
  }
  await sleep(QUIET_MS);
  let pushed = 0;
  let others = 0;
  sessions.forEach((s, i) => {
    if (s.transitions > before[i]) {
      pushed++;
      if (i !== target) others++;
    }
  });
  for (const s of sessions) s.close();
  console.log(JSON.stringify({ mode, sessions: N, openMs, targetMs, targetServerMs, pushed, others, quietMs: QUIET_MS }));
}
