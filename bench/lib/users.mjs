// users.mjs — benchmark setup, not a measurement: mints tokens for N users
// from the bench issuer and creates the users (users:getOrCreate over HTTP,
// 32 at a time), then writes one line per user: "<token>\t<userId>\t<subject>".
//
//   node bench/lib/users.mjs DOJO_URL ISSUER_URL PREFIX N OUT_FILE
//
// Subjects are PREFIX0 .. PREFIX<N-1>, emails PREFIX<i>@bench.example.

import { writeFileSync } from 'node:fs';

const [url, issuer, prefix, nText, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node users.mjs DOJO_URL ISSUER_URL PREFIX N OUT_FILE');
  process.exit(2);
}
const n = Number(nText);
const MINT_BATCH = 250;
const CONCURRENCY = 32;

const tokens = [];
for (let from = 0; from < n; from += MINT_BATCH) {
  const res = await fetch(`${issuer}/tokens?prefix=${encodeURIComponent(prefix)}&n=${Math.min(MINT_BATCH, n - from)}&from=${from}`);
  if (!res.ok) throw new Error(`issuer: HTTP ${res.status}`);
  tokens.push(...(await res.json()));
}

const ids = new Array(n);
let next = 0;
async function worker() {
  while (next < n) {
    const i = next++;
    const res = await fetch(`${url}/api/mutation`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tokens[i]}` },
      body: JSON.stringify({ path: 'users:getOrCreate', args: {}, format: 'json' }),
    });
    const body = await res.json();
    if (body.status !== 'success') throw new Error(`users:getOrCreate for ${prefix}${i}: ${JSON.stringify(body)}`);
    ids[i] = body.value._id;
  }
}
await Promise.all(Array.from({ length: CONCURRENCY }, worker));
writeFileSync(out, tokens.map((t, i) => `${t}\t${ids[i]}\t${prefix}${i}\n`).join(''));
