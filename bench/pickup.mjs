// pickup.mjs — g. pick-up latency of `dojo worker` (api.md §10): from the
// moment a client sends runs:create to the moment the worker's command
// starts. The command (bench/files.sh writes it) records its start time in
// nanoseconds into $MARK_DIR/$DOJO_RUN_ID and prints a URL (no upload, so the
// next run is not held up); this script creates the runs one at a time,
// waits for each to complete (the worker is idle when the next one comes),
// and prints the latencies.
//
//   node bench/pickup.mjs URL ADMIN_KEY MARK_DIR RUNS
// Prints one JSON line: {"latencies_ms": [...]}.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const [url, key, markDir, runsText] = process.argv.slice(2);
const runs = Number(runsText || 30);
const identity = Buffer.from(JSON.stringify({ tokenIdentifier: 'https://bench.example|pickup' })).toString('base64');

async function call(kind, fn, args, asUser = true) {
  const res = await fetch(`${url}/api/${kind}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Convex ${key}${asUser ? `:${identity}` : ''}` },
    body: JSON.stringify({ path: fn, args, format: 'json' }),
  });
  const body = await res.json();
  if (body.status !== 'success') throw new Error(`${fn}: ${body.errorMessage}`);
  return body.value;
}

const user = await call('mutation', 'users:getOrCreate', {});
await call('mutation', 'admin:grantCredits', { userId: user._id, amount: runs + 10 }, false);
const latencies = [];
for (let i = 0; i < runs; i++) {
  // Wall-clock nanoseconds, like the command's `date +%s%N` (microsecond precision).
  const wall0 = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e3)) * 1000n;
  const id = await call('mutation', 'runs:create', { input: { model: 'bench', prompt: `run ${i}` } });
  const mark = path.join(markDir, id);
  for (let tries = 0; ; tries++) {
    if (existsSync(mark)) {
      const started = readFileSync(mark, 'utf8').trim();
      if (started) {
        latencies.push(Number(BigInt(started) - wall0) / 1e6);
        break;
      }
    }
    if (tries > 20000) throw new Error(`run ${id} was not picked up`);
    await new Promise((r) => setTimeout(r, 1));
  }
  for (;;) {
    const run = await call('query', 'runs:get', { id });
    if (run.status === 'completed' || run.status === 'failed') break;
    await new Promise((r) => setTimeout(r, 2));
  }
}
console.log(JSON.stringify({ latencies_ms: latencies }));
