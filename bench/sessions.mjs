// sessions.mjs — what an idle session costs the server: opens N WebSocket
// sync sessions, each signed in as its own user (USERS_FILE from
// bench/lib/users.mjs) and subscribed to its own users:me, waits until every
// one has its first value, then reads the server's resident memory
// (/proc/PID/status) with all of them open and idle, and again after they
// close.
//
//   node bench/sessions.mjs DOJO_URL DOJO_PID N USERS_FILE
//
// Prints one JSON object: {sessions, rss_before, rss_open, rss_after,
// per_session_bytes}. Run through `bash bench/run.sh sessions` (which raises
// the open-files limit: 10,000 sockets on each side).

import { readFileSync } from 'node:fs';
import { BareSession, updatedValue } from './lib/bare_sync.mjs';

const [url, pidText, nText, usersFile] = process.argv.slice(2);
if (!usersFile) {
  console.error('usage: node sessions.mjs DOJO_URL DOJO_PID N USERS_FILE');
  process.exit(2);
}
const N = Number(nText);
const OPEN_CONCURRENCY = 200;
const READY_TIMEOUT_MS = 120_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function rss() {
  const status = readFileSync(`/proc/${pidText}/status`, 'utf8');
  return Number(status.match(/VmRSS:\s+(\d+) kB/)[1]) * 1024;
}

const tokens = readFileSync(usersFile, 'utf8').trim().split('\n').map((l) => l.split('\t')[0]).slice(0, N);
if (tokens.length < N) throw new Error(`${usersFile} has ${tokens.length} users, not ${N}`);

await sleep(2500); // freed heap goes back once a second: start from a settled server
const rssBefore = rss();
const sessions = [];
let next = 0;
async function worker() {
  while (next < N) {
    const i = next++;
    const s = await BareSession.open(url);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`session ${i}: no first value`)), READY_TIMEOUT_MS);
      s.onTransition = (msg) => {
        const v = updatedValue(msg, 0);
        if (v === undefined) return;
        if (v === null) return reject(new Error(`session ${i}: users:me is null`));
        s.onTransition = null;
        clearTimeout(timer);
        resolve();
      };
      s.authenticate(tokens[i]);
      if (process.env.SESSIONS_MODE === 'auth-only') {
        s.onTransition = null;
        clearTimeout(timer);
        setTimeout(resolve, 5);
      } else {
        s.subscribe(0, 'users:me');
      }
    });
    sessions.push(s);
    if (sessions.length % 1000 === 0) console.error(`sessions: ${sessions.length} open`);
  }
}
await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, worker));
await sleep(2500); // idle: pings aside, nothing happens
const rssOpen = rss();
for (const s of sessions) s.close();
await sleep(3500);
const rssAfter = rss();
console.log(
  JSON.stringify({
    sessions: N,
    rss_before: rssBefore,
    rss_open: rssOpen,
    rss_after: rssAfter,
    per_session_bytes: Math.round((rssOpen - rssBefore) / N),
  }),
);
process.exit(0);
