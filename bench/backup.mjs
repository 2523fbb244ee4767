// backup.mjs — why `dojo backup` copies with SQLite's online backup API and
// not VACUUM INTO (docs/OPERATIONS.md "Online backups"): both are taken of
// the same live database while writers keep granting credits over HTTP, and
// for each this prints how long the copy took, how big it is, and what the
// writers saw meanwhile (mutations answered, their slowest and 99th
// percentile latency), against the same load with no backup running.
//
//   node bench/backup.mjs [--dojo build/dojo] [--mib 400] [--runs 200000] [--writers 4]
//
// The database gets --mib MiB of ballast (a table of random blobs, added
// with sqlite3 before dojo opens it), --runs rows of the runs table (written
// with sqlite3 in dojo's layout, so every one of its 8 indexes holds them),
// and the users the writers credit.
// Prints figures only; asserts only that the calls it times succeeded.

import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    dojo: { type: 'string', default: 'build/dojo' },
    mib: { type: 'string', default: '400' },
    writers: { type: 'string', default: '4' },
    runs: { type: 'string', default: '200000' },
  },
});
const dir = mkdtempSync(path.join(os.tmpdir(), 'dojo-bench-backup-'));
const db = path.join(dir, 'dojo.db');
const key = randomBytes(16).toString('hex');
execFileSync('sqlite3', [
  db,
  `PRAGMA journal_mode=WAL; CREATE TABLE ballast(b BLOB);
   WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${Number(opt.mib)})
   INSERT INTO ballast SELECT randomblob(1048576) FROM n;`,
]);
const server = spawn(opt.dojo, ['serve', '--db', `sqlite:${db}`, '--listen', '127.0.0.1:0'], {
  env: { ...process.env, DOJO_ADMIN_KEY: key },
  stdio: ['ignore', 'ignore', 'pipe'],
});
let log = '';
server.stderr.on('data', (d) => (log += d));
const url = await new Promise((resolve, reject) => {
  const timer = setInterval(() => {
    const m = /listening on (http:\/\/\S+:\d+)/.exec(log);
    if (m) {
      clearInterval(timer);
      resolve(m[1]);
    }
  }, 20);
  server.on('exit', (code) => reject(new Error(`dojo exited ${code}: ${log}`)));
});

async function call(pathName, args, identity) {
  const auth = identity ? `Convex ${key}:${Buffer.from(JSON.stringify(identity)).toString('base64')}` : `Convex ${key}`;
  const res = await fetch(`${url}/api/function`, {
    method: 'POST',
    headers: { Authorization: auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({ path: pathName, args, format: 'json' }),
  });
  const body = await res.json();
  if (body.status !== 'success') throw new Error(`${pathName}: ${JSON.stringify(body)}`);
  return body.value;
}

// Rows of the runs table in dojo's layout (each index is an expression index
// over the JSON document, as dojo declares them).
execFileSync('sqlite3', [
  db,
  `PRAGMA busy_timeout=10000;
   WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${Number(opt.runs)})
   INSERT INTO runs(id, creation_time, doc) SELECT 'bench' || i, i,
     json_object('_id', 'bench' || i, '_creationTime', i, 'userId', 'u' || (i % 500),
                 'status', CASE i % 4 WHEN 0 THEN 'queued' WHEN 1 THEN 'processing' WHEN 2 THEN 'completed' ELSE 'failed' END,
                 'input', json_object('model', 'flux', 'prompt', 'a red fox in the snow, number ' || i),
                 'cost', 1, 'attempts', 0) FROM n;`,
]);
const users = [];
for (let i = 0; i < Number(opt.writers); i++) {
  users.push((await call('users:getOrCreate', {}, { tokenIdentifier: `https://bench|u${i}` }))._id);
}
const samples = []; // {start, end}
let stop = false;
const load = users.map(async (userId) => {
  while (!stop) {
    const start = performance.now();
    await call('admin:grantCredits', { userId, amount: 1 });
    samples.push({ start, end: performance.now() });
  }
});

function window(from, to) {
  const ms = samples.filter((s) => s.end > from && s.start < to).map((s) => s.end - s.start).sort((a, b) => a - b);
  const p = (q) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? 0;
  return { n: ms.length, p50: p(0.5), p99: p(0.99), max: ms.at(-1) ?? 0, perS: (ms.length / (to - from)) * 1000 };
}

async function measure(name, run) {
  const from = performance.now();
  const out = await run();
  const to = performance.now();
  const w = window(from, to);
  console.log(
    `${name.padEnd(34)} ${(to - from).toFixed(0).padStart(6)} ms  ${(out.bytes / 1048576).toFixed(1).padStart(7)} MiB  ` +
      `writes ${w.n} (${w.perS.toFixed(0)}/s)  p50 ${w.p50.toFixed(1)} ms  p99 ${w.p99.toFixed(1)} ms  max ${w.max.toFixed(1)} ms`,
  );
}

const run = (cmd, args) =>
  new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: ${err}`))));
  });

await new Promise((r) => setTimeout(r, 2000));
console.log(`database ${(statSync(db).size / 1048576).toFixed(0)} MiB, ${users.length} writers granting credits over HTTP`);
await measure('no backup (3 s of load)', async () => {
  await new Promise((r) => setTimeout(r, 3000));
  return { bytes: 0 };
});
await measure('dojo backup (online backup API)', async () => {
  const out = path.join(dir, 'api.tar');
  await run(opt.dojo, ['backup', out, '--db', `sqlite:${db}`]);
  return { bytes: statSync(out).size };
});
await measure('sqlite3 VACUUM INTO', async () => {
  const out = path.join(dir, 'vacuum.db');
  await run('sqlite3', [db, `PRAGMA busy_timeout=5000; VACUUM INTO '${out}'`]);
  return { bytes: statSync(out).size };
});
stop = true;
await Promise.all(load);
server.kill('SIGTERM');
await new Promise((r) => server.on('exit', r));
rmSync(dir, { recursive: true, force: true });
