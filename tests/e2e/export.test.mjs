// export.test.mjs — `dojo export` / `dojo import` (api.md §7): a snapshot of
// every table and the deployment variables, taken while the server runs and
// writes, and its all-or-nothing restore. export → import → export yields the
// same documents; import refuses a non-empty database (unless --replace), a
// database a running server has open, a file whose ledger does not add up
// (and writes nothing), a cut file, and a line over 16 MiB; a snapshot taken
// under concurrent writes restores to data `dojo verify` accepts.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { checkAfterEach, dojoCli, freshDir, makeFunctionReference as ref, startDojo } from './lib/dojo.mjs';
import { startIssuer } from './lib/issuer.mjs';

const api = {
  getOrCreate: ref('users:getOrCreate'),
  createRun: ref('runs:create'),
  cancelRun: ref('runs:cancel'),
  createWorkflow: ref('workflows:create'),
};

let issuer;
let dojo;
let work; // a folder for files and copies
let users = 0;

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer });
  work = freshDir('dojo-export-');
  await dojo.adminCall('_system:envSet', { name: 'PRICING', value: '{"default":2,"models":{"video":5}}' });
  for (let i = 0; i < 3; i++) await newUserWithHistory();
});
checkAfterEach(() => dojo);

/** A user with a grant, a workflow, a run, and a cancelled (refunded) run. */
async function newUserWithHistory() {
  const email = `user${++users}@example.com`;
  const client = dojo.httpClient(await issuer.token({ email, name: `User ${users}` }));
  const user = await client.mutation(api.getOrCreate, {});
  await dojo.adminCall('admin:grantCredits', { email, amount: 50, note: 'welcome' });
  const workflowId = await client.mutation(api.createWorkflow, { title: 'Fox', nodes: [{ id: 'n1' }], edges: [] });
  await client.mutation(api.createRun, { input: { model: 'video', prompt: 'a fox' }, workflowId });
  const cancelled = await client.mutation(api.createRun, { input: { model: 'image', prompt: 'a cat' } });
  await client.mutation(api.cancelRun, { id: cancelled });
  return { user, client, email };
}

const file = (name) => path.join(work, name);
const db = (name) => `sqlite:${path.join(work, name)}`;

async function cli(args) {
  const r = await dojoCli(args, { cwd: work });
  assert.doesNotMatch(r.stderr, /AddressSanitizer|runtime error:/, r.stderr);
  return r;
}

async function exportTo(name, dbUrl = dojo.dbUrl) {
  const r = await cli(['export', file(name), '--db', dbUrl]);
  assert.equal(r.code, 0, `dojo export: ${r.stderr}`);
  return readExport(name);
}

/** {header, docs: [{table, doc}]} of an export file. */
function readExport(name) {
  const lines = readFileSync(file(name), 'utf8').split('\n').filter(Boolean);
  return { header: JSON.parse(lines[0]), docs: lines.slice(1).map((l) => JSON.parse(l)), lines };
}

const documentsOf = (name) => readExport(name).docs;

test('the export holds a header with counts, then every document with its _id and _creationTime', async () => {
  const { header, docs } = await exportTo('layout.jsonl');
  assert.equal(header.format, 'dojo-export');
  assert.equal(header.version, 1);
  assert.equal(typeof header.schemaVersion, 'number');
  assert.ok(Math.abs(header.exportedAt - Date.now()) < 60_000);
  const tables = Object.keys(header.tables);
  for (const t of ['users', 'workflows', 'runs', 'transactions', '_env']) assert.ok(tables.includes(t), t);
  for (const t of tables) assert.equal(docs.filter((d) => d.table === t).length, header.tables[t], t);
  // Table order, then _creationTime order.
  const order = docs.map((d) => tables.indexOf(d.table));
  assert.deepEqual(order, [...order].sort((a, b) => a - b));
  for (const t of tables) {
    const times = docs.filter((d) => d.table === t).map((d) => d.doc._creationTime);
    assert.deepEqual(times, [...times].sort((a, b) => a - b), `${t} in creation order`);
  }
  for (const { doc } of docs) {
    assert.equal(typeof doc._id, 'string');
    assert.equal(typeof doc._creationTime, 'number');
  }
  const env = docs.filter((d) => d.table === '_env').map((d) => d.doc);
  assert.deepEqual(env.map((e) => [e.name, e.value]), [['PRICING', '{"default":2,"models":{"video":5}}']]);
  assert.equal(header.tables.users, users);
});

test('export → import into an empty database → export yields the same documents', async () => {
  const first = await exportTo('round1.jsonl');
  const imp = await cli(['import', file('round1.jsonl'), '--db', db('round.db')]);
  assert.equal(imp.code, 0, imp.stderr);
  assert.match(imp.stdout, /imported \d+ documents/);
  const second = await exportTo('round2.jsonl', db('round.db'));
  assert.deepEqual(second.header.tables, first.header.tables);
  assert.deepEqual(second.docs, first.docs);
  assert.deepEqual(second.lines.slice(1), first.lines.slice(1), 'byte for byte, floats included');
  const verify = await cli(['verify', '--db', db('round.db')]);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
});

test('a restored deployment serves the data and keeps its clocks moving forward', async () => {
  const { lines } = await exportTo('serve.jsonl');
  // A document from a clock an hour ahead: new documents must still come after it.
  const future = Date.now() + 3600_000;
  const shifted = lines.map((line) => {
    const row = JSON.parse(line);
    if (row.table !== '_env') return line;
    row.doc._creationTime = future;
    return JSON.stringify(row);
  });
  writeFileSync(file('serve-future.jsonl'), `${shifted.join('\n')}\n`);
  const dir = freshDir('dojo-restored-');
  const imp = await cli(['import', file('serve-future.jsonl'), '--db', `sqlite:${path.join(dir, 'dojo.db')}`]);
  assert.equal(imp.code, 0, imp.stderr);
  const restored = await startDojo({ issuer, dir, dbUrl: `sqlite:${path.join(dir, 'dojo.db')}` });
  try {
    const newest = future;
    const client = restored.httpClient(await issuer.token({ email: 'after@example.com' }));
    const user = await client.mutation(api.getOrCreate, {});
    assert.ok(user._creationTime > newest, 'a new document is newer than every imported one');
    await restored.adminCall('admin:grantCredits', { email: 'user1@example.com', amount: 7 });
    const pricing = await restored.adminCall('_system:envGet', { name: 'PRICING' });
    assert.equal(pricing.value, '{"default":2,"models":{"video":5}}', 'deployment variables restored');
    await restored.checkInvariants();
  } finally {
    await restored.stop();
  }
});

test('import refuses a non-empty database without --replace, and changes nothing', async () => {
  const before = await exportTo('nonempty.jsonl');
  const first = await cli(['import', file('nonempty.jsonl'), '--db', db('nonempty.db')]);
  assert.equal(first.code, 0, first.stderr);
  const again = await cli(['import', file('nonempty.jsonl'), '--db', db('nonempty.db')]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /not empty/);
  assert.match(again.stderr, /--replace/);
  assert.deepEqual((await exportTo('nonempty-after.jsonl', db('nonempty.db'))).docs, before.docs);
});

test('import --replace replaces the whole contents', async () => {
  const old = await exportTo('replace-old.jsonl');
  assert.equal((await cli(['import', file('replace-old.jsonl'), '--db', db('replace.db')])).code, 0);
  await newUserWithHistory();
  const current = await exportTo('replace-new.jsonl');
  assert.notDeepEqual(current.docs, old.docs);
  const r = await cli(['import', file('replace-new.jsonl'), '--db', db('replace.db'), '--replace']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await exportTo('replace-check.jsonl', db('replace.db'))).docs, current.docs);
  const verify = await cli(['verify', '--db', db('replace.db')]);
  assert.equal(verify.code, 0, verify.stdout);
});

test('import refuses a file whose ledger does not add up, and writes nothing', async () => {
  const { lines } = await exportTo('ledger.jsonl');
  let edited = false;
  const tampered = lines.map((line) => {
    const row = JSON.parse(line);
    if (!edited && row.table === 'users') {
      row.doc.credits += 5; // a balance its transactions do not explain
      edited = true;
      return JSON.stringify(row);
    }
    return line;
  });
  assert.ok(edited);
  writeFileSync(file('ledger-bad.jsonl'), `${tampered.join('\n')}\n`);
  const r = await cli(['import', file('ledger-bad.jsonl'), '--db', db('ledger.db')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /refusing a file that would break the ledger invariants/);
  assert.match(r.stderr, /credits/);
  assert.match(r.stderr, /nothing was written/);
  assert.ok(!existsSync(file('ledger.db')), 'a refused import leaves no new database behind');
  // With --replace, the old contents survive a refused file.
  assert.equal((await cli(['import', file('ledger.jsonl'), '--db', db('ledger.db')])).code, 0);
  const refused = await cli(['import', file('ledger-bad.jsonl'), '--db', db('ledger.db'), '--replace']);
  assert.equal(refused.code, 1);
  assert.deepEqual((await exportTo('ledger-kept.jsonl', db('ledger.db'))).docs, readExport('ledger.jsonl').docs);
});

test('import refuses a cut file, a document of the wrong table and a line over 16 MiB, naming the line', async () => {
  const { lines } = await exportTo('shapes.jsonl');
  writeFileSync(file('cut.jsonl'), `${lines.slice(0, -2).join('\n')}\n`);
  const cut = await cli(['import', file('cut.jsonl'), '--db', db('cut.db')]);
  assert.equal(cut.code, 1);
  assert.match(cut.stderr, /incomplete/);

  const moved = lines.map((l, i) => (i === 1 ? l.replace('"table":"users"', '"table":"workflows"') : l));
  writeFileSync(file('moved.jsonl'), `${moved.join('\n')}\n`);
  const wrong = await cli(['import', file('moved.jsonl'), '--db', db('moved.db')]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /line 2: .*id of table users, not of workflows/);

  writeFileSync(file('huge.jsonl'), `${lines[0]}\n${'x'.repeat(16 * 1024 * 1024 + 1)}\n`);
  const huge = await cli(['import', file('huge.jsonl'), '--db', db('huge.db')]);
  assert.equal(huge.code, 1);
  assert.match(huge.stderr, /line 2 is longer than .*16 MiB/);
});

test('import refuses the SQLite database of a running server', async () => {
  await exportTo('running.jsonl');
  // SQLite file locks tell a running server apart; this holds whatever store
  // the other tests run on.
  const dir = freshDir('dojo-running-');
  const running = await startDojo({ issuer, dir, dbUrl: `sqlite:${path.join(dir, 'dojo.db')}` });
  try {
    const r = await cli(['import', file('running.jsonl'), '--db', running.dbUrl, '--replace']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /open in another process \(pid \d+\)/);
    assert.match(r.stderr, /Stop it first/);
  } finally {
    await running.stop();
  }
});

test('export while the server serves writes is one consistent snapshot', async () => {
  const writers = [];
  for (let i = 0; i < 3; i++) writers.push(await newUserWithHistory());
  let writing = true;
  let writes = 0;
  const load = writers.map(async ({ client, email }) => {
    while (writing) {
      await dojo.adminCall('admin:grantCredits', { email, amount: 3 });
      await client.mutation(api.createRun, { input: { model: 'image', prompt: `p${writes}` } });
      writes++;
    }
  });
  try {
    for (let round = 0; round < 3; round++) {
      const name = `busy${round}.jsonl`;
      await exportTo(name);
      const r = await cli(['import', file(name), '--db', db(`busy${round}.db`)]);
      assert.equal(r.code, 0, `snapshot ${round} under load: ${r.stderr}`);
      const verify = await cli(['verify', '--db', db(`busy${round}.db`)]);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    }
  } finally {
    writing = false;
    await Promise.all(load);
  }
  assert.ok(writes > 0, 'the server was writing during the exports');
});

test('export of a database that does not exist fails without creating it', async () => {
  const r = await cli(['export', file('none.jsonl'), '--db', db('missing.db')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no database at/);
  const again = await cli(['export', file('none.jsonl'), '--db', db('missing.db')]);
  assert.match(again.stderr, /no database at/, 'still no database');
});

test('verify of a database that does not exist fails without creating it', async () => {
  const r = await cli(['verify', '--db', db('missing-verify.db')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no database at .*missing-verify\.db/);
  const again = await cli(['verify', '--db', db('missing-verify.db')]);
  assert.match(again.stderr, /no database at/, 'the first call created nothing');
});

/** The lines of a fresh export with edit(row) applied to each parsed line (header included). */
async function editedExport(name, edit) {
  const { lines } = await exportTo(`${name}-source.jsonl`);
  const out = lines.map((line) => JSON.stringify(edit(JSON.parse(line)) ?? JSON.parse(line)));
  writeFileSync(file(`${name}.jsonl`), `${out.join('\n')}\n`);
  return file(`${name}.jsonl`);
}

test('import refuses a _creationTime far in the future and deployment variables `dojo env set` refuses', async () => {
  let done = false;
  const future = await editedExport('future', (row) => {
    if (!done && row.table === 'transactions') {
      done = true;
      row.doc._creationTime = 1e300;
      return row;
    }
  });
  const r = await cli(['import', future, '--db', db('future.db')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /line \d+: document \S+: _creationTime .* more than a day ahead/);
  assert.ok(!existsSync(file('future.db')));
  for (const [name, value, message] of [
    ['MAX_ATTEMPTS', '0', /MAX_ATTEMPTS must be an integer from 1/],
    ['PRICING', 'not json', /PRICING/],
    ['bad name', '1', /deployment variable name/],
  ]) {
    const bad = await editedExport('env', (row) => {
      if (row.table === '_env') {
        row.doc.name = name;
        row.doc.value = value;
        return row;
      }
    });
    const refused = await cli(['import', bad, '--db', db('env.db')]);
    assert.equal(refused.code, 1, `${name}=${value} was accepted`);
    assert.match(refused.stderr, message);
  }
});

test('export refuses to write over the database it reads', async () => {
  assert.equal((await cli(['import', file('layout.jsonl'), '--db', db('self.db')])).code, 0);
  for (const target of ['self.db', 'self.db-wal']) {
    if (!existsSync(file(target))) continue;
    const r = await cli(['export', file(target), '--db', db('self.db')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /is the database itself/);
  }
  assert.equal((await cli(['verify', '--db', db('self.db')])).code, 0, 'the database is intact');
});

test('the offline commands never print a database password', async () => {
  const url = 'postgres://dojo:s3cretpw@127.0.0.1:1/dojo';
  for (const args of [['verify', '--db', url], ['export', file('pw.jsonl'), '--db', url]]) {
    const r = await cli(args);
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stdout + r.stderr, /s3cretpw/);
  }
});

test('import refuses a processing run without its worker and a charge without its run', async () => {
  let run = false;
  const processing = await editedExport('processing', (row) => {
    if (!run && row.table === 'runs' && row.doc.status === 'queued') {
      run = true;
      row.doc.status = 'processing';
      return row;
    }
  });
  assert.ok(run);
  const r = await cli(['import', processing, '--db', db('processing.db')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /processing without a workerId/);
  let tx = false;
  const orphan = await editedExport('orphan-charge', (row) => {
    if (!tx && row.table === 'transactions' && row.doc.kind === 'run') {
      tx = true;
      delete row.doc.runId;
      return row;
    }
  });
  assert.ok(tx);
  const o = await cli(['import', orphan, '--db', db('orphan.db')]);
  assert.equal(o.code, 1);
  assert.match(o.stderr, /"run" transaction without its runId/);
});
