// upgrade.test.mjs — a database written by a dojo of storage format 1
// (documents as JSON, expression indexes: fixtures/v1, made by
// fixtures/make-v1.mjs with that dojo) is upgraded in place at start: the
// server (`dojo dev` on SQLite) says so, every document comes back exactly as
// that dojo exported it (fields in their order, numbers as they were), the
// ledger invariants hold (`dojo verify`), writes go on, and export/import and
// backup/restore work on the result. Runs on SQLite and, as e2e-pg.upgrade,
// on PostgreSQL (the fixture is a pg_dump of the schema that dojo wrote).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';

import { checkAfterEach, dojoCli, freshDir, startDev, startDojo } from './lib/dojo.mjs';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'v1');
const onPostgres = process.env.DOJO_E2E_STORE === 'postgres';
const servers = [];
checkAfterEach(() => servers);
after(async () => {
  for (const s of servers) if (!s.proc.exited) await s.stop();
});

/** The documents of an export file, without its header's timestamp. */
function exportLines(file) {
  const [header, ...docs] = readFileSync(file, 'utf8').trim().split('\n');
  const h = JSON.parse(header);
  delete h.exportedAt;
  return { header: h, docs };
}

async function cli(args) {
  const r = await dojoCli(args, { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `dojo ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r;
}

/** The version-1 fixture as a database dojo can open: a SQLite file in a
 *  fresh ./.dojo, or the dumped schema loaded under a fresh name. */
function fixtureDatabase() {
  if (onPostgres) {
    const base = process.env.DOJO_TEST_PG_URL;
    assert.ok(base, 'e2e-pg.upgrade needs DOJO_TEST_PG_URL');
    const schema = `v1_${randomBytes(6).toString('hex')}`;
    const dump = readFileSync(path.join(FIXTURES, 'postgres.sql'), 'utf8').replaceAll('dojo_v1_fixture', schema);
    execFileSync('psql', [base, '-v', 'ON_ERROR_STOP=1', '-q'], { input: dump, env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' } });
    return { dir: freshDir('dojo-upgrade-'), dbUrl: `${base}?options=-csearch_path%3D${schema}` };
  }
  const dir = freshDir('dojo-upgrade-');
  mkdirSync(path.join(dir, '.dojo'));
  copyFileSync(path.join(FIXTURES, 'dojo.db'), path.join(dir, '.dojo', 'dojo.db'));
  return { dir, dbUrl: `sqlite:${path.join(dir, '.dojo', 'dojo.db')}` };
}

test('a database of storage format 1 is upgraded in place at start and keeps every document', async () => {
  const { dir, dbUrl } = fixtureDatabase();
  const UPGRADED = /upgraded storage format 1 → 2 \(24 documents in 6 tables rewritten\)/;
  let server;
  if (onPostgres) {
    server = await startDojo({ dbUrl, dir });
    assert.match(server.stderr, UPGRADED);
  } else {
    server = await startDev({ cwd: dir });
    assert.match(server.proc.stdoutText, UPGRADED, 'dojo dev says so');
  }
  servers.push(server);
  const ledger = await server.adminCall('admin:verifyLedger', {});
  assert.equal(ledger.ok, true, JSON.stringify(ledger));
  await server.stop();

  // Every document exactly as the old dojo exported it.
  const exported = path.join(dir, 'after.jsonl');
  await cli(['export', exported, '--db', dbUrl]);
  const before = exportLines(path.join(FIXTURES, onPostgres ? 'export-postgres.jsonl' : 'export-sqlite.jsonl'));
  const now = exportLines(exported);
  // Tables the schema gained since are there, empty; the others hold what
  // they held.
  for (const [table, n] of Object.entries(now.header.tables)) assert.equal(n, before.header.tables[table] ?? 0, table);
  assert.deepEqual(now.docs, before.docs, 'the documents, byte for byte');
  await cli(['verify', '--db', dbUrl]);
  if (!onPostgres) {
    const page = execFileSync('sqlite3', [dbUrl.slice('sqlite:'.length), 'PRAGMA page_size'], { encoding: 'utf8' });
    assert.equal(page.trim(), '1024', 'the file was rewritten with the new page size');
  }

  // Writes go on; a second start has nothing to upgrade.
  const again = await startDojo({ dbUrl, dir: freshDir('dojo-upgrade-again-') });
  servers.push(again);
  assert.match(again.stderr, /schema up to date \(version \d+\)/);
  assert.doesNotMatch(again.stderr, /upgraded storage format/);
  const alice = JSON.parse(before.docs.find((l) => l.includes('"name":"User alice"'))).doc;
  await again.adminCall('admin:grantCredits', { userId: alice._id, amount: 7, note: 'after the upgrade' });
  const runs = await again.adminCall('runs:claim', { workerId: 'after-upgrade' });
  assert.equal(runs.status, 'processing', 'the queued run found through its index');
  await again.checkInvariants();
  await again.stop();

  // Export, import into a new database, and (SQLite) backup and restore.
  const second = path.join(dir, 'second.jsonl');
  await cli(['export', second, '--db', dbUrl]);
  const target = onPostgres ? fixtureDatabase().dbUrl : `sqlite:${path.join(freshDir('dojo-upgrade-import-'), 'dojo.db')}`;
  await cli(['import', second, '--db', target, ...(onPostgres ? ['--replace'] : [])]);
  await cli(['verify', '--db', target]);
  const reexported = path.join(dir, 'third.jsonl');
  await cli(['export', reexported, '--db', target]);
  assert.deepEqual(exportLines(reexported).docs, exportLines(second).docs);
  if (!onPostgres) {
    const tar = path.join(dir, 'upgraded.tar');
    await cli(['backup', tar, '--db', dbUrl]);
    const restored = `sqlite:${path.join(freshDir('dojo-upgrade-restore-'), 'dojo.db')}`;
    await cli(['restore', tar, '--db', restored]);
    await cli(['verify', '--db', restored]);
  }
});
