// nchan_fanout.mjs — the reference for dojo's fan-out: nginx with the nchan
// module, N WebSocket subscribers on one channel, one message published;
// measures, per subscriber, the time from the publish to its arrival.
//
//   node bench/nchan_fanout.mjs NGINX_URL N
//
// Prints one JSON object: {sessions, p50Ms, lastMs, deliveriesPerSec}. Run
// through `bash bench/run.sh nchan`, which starts nginx with the module.

import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const [url, nText] = process.argv.slice(2);
const N = Number(nText);
const OPEN_CONCURRENCY = 200;
const PUSH_TIMEOUT_MS = 30_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const sockets = [];
let next = 0;
async function open() {
  while (next < N) {
    next++;
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/sub`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    sockets.push(ws);
  }
}
await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, open));
await sleep(300);
const arrivals = [];
const allIn = new Promise((resolve) => {
  for (const ws of sockets)
    ws.once('message', () => {
      arrivals.push(performance.now() - t0);
      if (arrivals.length === N) resolve();
    });
});
const body = JSON.stringify({ type: 'Transition', value: { credits: 17, name: 'bench user' } });
const t0 = performance.now();
await fetch(`${url}/pub`, { method: 'POST', body });
const timer = setTimeout(() => {
  console.error(`nchan: only ${arrivals.length} of ${N} subscribers got the message`);
  process.exit(1);
}, PUSH_TIMEOUT_MS);
await allIn;
clearTimeout(timer);
arrivals.sort((a, b) => a - b);
for (const ws of sockets) ws.terminate();
const last = arrivals[N - 1];
console.log(
  JSON.stringify({
    sessions: N,
    p50Ms: arrivals[Math.ceil(N / 2) - 1],
    lastMs: last,
    deliveriesPerSec: (N * 1000) / last,
  }),
);
process.exit(0);
