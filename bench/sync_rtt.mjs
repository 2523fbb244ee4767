// sync_rtt.mjs — mutation round trip over the WebSocket sync protocol with
// the real ConvexClient (convex@1.48.0): the time from client.mutation() to
// its promise resolving, which in the Convex client happens only once the
// Transition covering the mutation's commit has arrived. N sequential calls,
// one user, after a warm-up; reported as p50/p99/max in milliseconds for
//   write: runs:create (inserts a run and a ledger row: a durable commit)
//   noop:  users:getOrCreate with an unchanged token (writes nothing, so no
//          commit and no fsync: the protocol and engine alone)
//
// Run through bench/run.sh (`bash bench/run.sh sync`), or by hand against a
// running dojo whose CLERK_ISSUER_URL is the bench issuer:
//   node bench/sync_rtt.mjs DOJO_URL ISSUER_URL [N=1000]
// Prints one JSON object on stdout.

import { performance } from 'node:perf_hooks';
import { ConvexClient } from 'convex/browser';
import { anyApi } from 'convex/server';
import WebSocket from 'ws';

const [url, issuer, nText = '1000'] = process.argv.slice(2);
if (!issuer) {
  console.error('usage: node sync_rtt.mjs DOJO_URL ISSUER_URL [N]');
  process.exit(2);
}
const N = Number(nText);
const WARMUP = 50;

const sub = `bench_rtt_${Date.now().toString(36)}`;
const token = await (await fetch(`${issuer}/token?sub=${sub}&email=${sub}@bench.example`)).text();

const client = new ConvexClient(url, { webSocketConstructor: WebSocket, logger: false, unsavedChangesWarning: false });
client.setAuth(async () => token);

const create = () => client.mutation(anyApi.runs.create, { input: { model: 'flux-schnell', prompt: 'a red fox in the snow' } });
const refresh = () => client.mutation(anyApi.users.getOrCreate, {});

async function measure(fn) {
  for (let i = 0; i < WARMUP; i++) await fn();
  const lat = new Float64Array(N);
  const started = performance.now();
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await fn();
    lat[i] = performance.now() - t;
  }
  const total = performance.now() - started;
  lat.sort();
  const at = (p) => lat[Math.min(N - 1, Math.ceil((p / 100) * N) - 1)];
  return { n: N, p50Ms: at(50), p99Ms: at(99), maxMs: lat[N - 1], perSecond: (N / total) * 1000 };
}

await refresh(); // creates the user (SIGNUP_CREDITS pays for the runs)
const write = await measure(create);
const noop = await measure(refresh);
await client.close();
console.log(JSON.stringify({ write, noop }));
