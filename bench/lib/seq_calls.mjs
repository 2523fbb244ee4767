// seq_calls.mjs — benchmark driver, not a measurement: calls one function N
// times, one after another, over a kept-alive HTTP connection, and fails on
// the first call that does not succeed. Used by bench/callgrind.sh, where the
// count matters and the speed does not.
//
//   node bench/lib/seq_calls.mjs DOJO_URL ROUTE AUTHORIZATION BODY_JSON N

const [url, route, auth, body, nText] = process.argv.slice(2);
if (!nText) {
  console.error('usage: node seq_calls.mjs DOJO_URL ROUTE AUTHORIZATION BODY_JSON N');
  process.exit(2);
}
const headers = { 'Content-Type': 'application/json' };
if (auth) headers.Authorization = auth;
for (let i = 0; i < Number(nText); i++) {
  const res = await fetch(`${url}${route}`, { method: 'POST', headers, body });
  const out = await res.json();
  if (out.status !== 'success') {
    console.error(`call ${i}: HTTP ${res.status} ${JSON.stringify(out)}`);
    process.exit(1);
  }
}
