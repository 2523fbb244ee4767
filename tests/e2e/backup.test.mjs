// backup.test.mjs — online backups (`dojo backup`, `dojo restore`, `dojo
// serve --backup-dir --backup-every --backup-keep`; docs/OPERATIONS.md):
//
// - a backup taken while writers keep committing restores to a database
//   `dojo verify` finds clean, holding every write acknowledged before the
//   backup started, and the writers are not held up while it runs;
// - the files directory beside the database travels with it;
// - a truncated, altered, foreign or empty backup, and one whose data breaks
//   the ledger, is refused with a clear error and nothing is written;
// - the schedule keeps N backups and never leaves a partial one, even when
//   the server is killed in the middle of a backup; /metrics tells the time,
//   size and duration of the last good one;
// - PostgreSQL deployments are pointed at their own tools and `dojo export`.
//
// The database carries ~100 MiB of ballast (a table dojo does not know,
// added with sqlite3) so a backup lasts long enough to overlap the load and
// to be killed half-way.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { checkAfterEach, dojoCli, DojoProcess, freshDir, startDojo, waitFor } from './lib/dojo.mjs';

const BALLAST_MIB = 100;
const LOAD_WRITERS = 4;
const BACKUP_NAME = /^dojo-backup-\d{8}T\d{6}\.\d{3}Z\.tar$/;
// A writer waits for the storage thread, never for the copy: no mutation
// overlapping a backup may take this long (the sanitizer build on a shared
// two-core machine is slow, so the bound is generous, but far below what
// waiting for the whole copy would take on a slow disk).
const WRITE_DURING_BACKUP_MS_MAX = 2500;

const servers = [];
let work;

before(() => {
  work = freshDir('dojo-backup-');
});
checkAfterEach(() => servers);
after(() => {});

const file = (name) => path.join(work, name);

async function cli(args, opts = {}) {
  const r = await dojoCli(args, { cwd: work, timeoutMs: 120_000, ...opts });
  assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error:/, r.stderr);
  return r;
}

/** A fresh SQLite database with ballast, created before dojo opens it. */
function ballastDb(dir) {
  const db = path.join(dir, 'dojo.db');
  execFileSync('sqlite3', [
    db,
    `PRAGMA journal_mode=WAL; CREATE TABLE ballast(b BLOB);
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${BALLAST_MIB})
     INSERT INTO ballast SELECT randomblob(1048576) FROM n;`,
  ]);
  return `sqlite:${db}`;
}

async function serverWithBallast(args = []) {
  const dir = freshDir('dojo-backup-serve-');
  const dbUrl = ballastDb(dir);
  const dojo = await startDojo({ dir, dbUrl, args });
  servers.push(dojo);
  return dojo;
}

/** Writers granting credits as fast as they are answered; every
 *  acknowledged transaction id is noted with when it was acknowledged. */
function startLoad(dojo, userIds) {
  const acked = [];
  const latencies = []; // {start, end}
  let stop = false;
  const loops = userIds.map(async (userId) => {
    while (!stop) {
      const start = Date.now();
      const r = await dojo.adminCall('admin:grantCredits', { userId, amount: 1 });
      const end = Date.now();
      latencies.push({ start, end });
      acked.push({ id: r.transactionId, userId, at: end });
    }
  });
  return {
    acked,
    latencies,
    async stop() {
      stop = true;
      await Promise.all(loops);
    },
  };
}

async function makeUsers(dojo, n) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    const tid = `https://issuer.test|backup_${Date.now()}_${i}`;
    const identity = Buffer.from(JSON.stringify({ tokenIdentifier: tid })).toString('base64');
    const res = await dojo.http('POST', '/api/function', {
      headers: { Authorization: `Convex ${dojo.adminKey}:${identity}` },
      body: { path: 'users:getOrCreate', args: {}, format: 'json' },
    });
    assert.equal(res.json?.status, 'success', res.text);
    ids.push(res.json.value._id);
  }
  return ids;
}

/** The ids of every document of table in a SQLite database, via dojo export. */
async function idsIn(dbUrl, table) {
  const out = file(`ids-${Date.now()}-${Math.random().toString(16).slice(2)}.jsonl`);
  const r = await cli(['export', out, '--db', dbUrl]);
  assert.equal(r.code, 0, r.stderr);
  const ids = new Set();
  for (const line of readFileSync(out, 'utf8').split('\n').slice(1)) {
    if (!line) continue;
    const row = JSON.parse(line);
    if (row.table === table) ids.add(row.doc._id);
  }
  return ids;
}

async function restoreInto(backup, name, extra = []) {
  const dir = file(name);
  mkdirSync(dir, { recursive: true });
  const dbUrl = `sqlite:${path.join(dir, 'dojo.db')}`;
  const r = await cli(['restore', backup, '--db', dbUrl, ...extra]);
  return { r, dbUrl, dir };
}

let loaded; // the server of the first test, reused for the refusals

test('a backup under a sustained write load restores clean, with every write acknowledged before it began', async (t) => {
  const dojo = await serverWithBallast();
  loaded = dojo;
  const files = path.join(dojo.dir, 'files');
  mkdirSync(path.join(files, 'ab'), { recursive: true });
  writeFileSync(path.join(files, 'ab', 'ab12cd34'), 'the bytes of a stored file\n');
  writeFileSync(path.join(files, 'ef56'), Buffer.alloc(70_000, 7));
  const users = await makeUsers(dojo, LOAD_WRITERS);
  const load = startLoad(dojo, users);
  await waitFor(() => load.acked.length >= 50, { timeoutMs: 60_000, what: '50 acknowledged grants' });

  const before = load.acked.map((a) => a.id);
  const startedAt = Date.now();
  const r = await cli(['backup', file('live.tar'), '--db', dojo.dbUrl]);
  const endedAt = Date.now();
  const duringBackup = load.latencies.filter((l) => l.end > startedAt && l.start < endedAt);
  const ackedDuring = load.acked.filter((a) => a.at > startedAt && a.at < endedAt).length;
  await waitFor(() => load.acked.length >= before.length + ackedDuring + 20, { timeoutMs: 60_000, what: 'more grants' });
  await load.stop();

  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /backed up .* to .*live\.tar: \d+ bytes \(the database and 2 files\), commit timestamp \d+, in \d+ ms/);
  assert.ok(statSync(file('live.tar')).size > BALLAST_MIB * 1024 * 1024, 'the whole database is in the backup');
  assert.equal(statSync(file('live.tar')).mode & 0o777, 0o600, 'readable by its owner only');
  t.diagnostic(`backup took ${endedAt - startedAt} ms; ${duringBackup.length} writes overlapped it, the slowest ${Math.max(...duringBackup.map((l) => l.end - l.start))} ms`);
  assert.ok(duringBackup.length > 0, `writes went on while the backup ran (${endedAt - startedAt} ms)`);
  const slowest = Math.max(...duringBackup.map((l) => l.end - l.start));
  assert.ok(
    slowest < WRITE_DURING_BACKUP_MS_MAX,
    `no write waited for the backup: the slowest of ${duringBackup.length} took ${slowest} ms (backup ${endedAt - startedAt} ms)`,
  );
  // A plain tar archive, with its manifest last.
  const listing = execFileSync('tar', ['tf', file('live.tar')], { encoding: 'utf8' }).trim().split('\n');
  assert.equal(listing.length, 5, listing.join(' '));
  assert.equal(listing[0], 'dojo.db');
  assert.deepEqual(listing.slice(1, 3).sort(), ['files/ab/ab12cd34', 'files/ef56']);
  assert.deepEqual(listing.slice(3), ['MANIFEST.jsonl', 'MANIFEST.sha256']);

  const { r: restored, dbUrl, dir } = await restoreInto(file('live.tar'), 'live-restored');
  assert.equal(restored.code, 0, restored.stderr);
  assert.match(restored.stdout, /restored .*live\.tar .* every check passed/);
  const verify = await cli(['verify', '--db', dbUrl]);
  assert.equal(verify.code, 0, `dojo verify on the restored database:\n${verify.stdout}${verify.stderr}`);
  assert.match(verify.stdout, /^ok: /m);
  const present = await idsIn(dbUrl, 'transactions');
  const missing = before.filter((id) => !present.has(id));
  assert.deepEqual(missing, [], `all ${before.length} grants acknowledged before the backup are in it`);
  assert.equal(readFileSync(path.join(dir, 'files', 'ab', 'ab12cd34'), 'utf8'), 'the bytes of a stored file\n');
  assert.deepEqual(readFileSync(path.join(dir, 'files', 'ef56')), Buffer.alloc(70_000, 7));
});

test('a truncated, altered, foreign or empty backup is refused with a clear error, and nothing is written', async () => {
  assert.ok(existsSync(file('live.tar')), 'the first test wrote live.tar');
  const whole = readFileSync(file('live.tar'));
  const cases = [];
  const write = (name, bytes) => {
    writeFileSync(file(name), bytes);
    return file(name);
  };
  cases.push({
    name: 'cut in the database',
    path: write('cut-db.tar', whole.subarray(0, 5_000_000)),
    error: /the backup is truncated: it ends at byte 5000000, inside dojo\.db/,
  });
  cases.push({
    name: 'cut before the manifest',
    path: write('cut-end.tar', whole.subarray(0, whole.length - 3 * 512)),
    error: /the backup is truncated/,
  });
  cases.push({ name: 'without its end blocks', path: write('cut-tail.tar', whole.subarray(0, whole.length - 1024)), error: /the backup is truncated/ });
  const flip = (offset) => {
    const copy = Buffer.from(whole);
    copy[offset] ^= 0x55;
    return copy;
  };
  cases.push({ name: 'a byte of the database changed', path: write('flip-db.tar', flip(512 + 4096 * 7 + 100)), error: /the backup is damaged: dojo\.db does not match its checksum in the manifest/ });
  // The last member before the manifest is a file's; alter the manifest's digest line.
  const sumAt = whole.lastIndexOf(Buffer.from('  MANIFEST.jsonl\n')) - 10;
  cases.push({ name: 'the manifest checksum changed', path: write('flip-sum.tar', flip(sumAt)), error: /the backup is damaged: MANIFEST\.jsonl does not match its checksum in MANIFEST\.sha256/ });
  const headerAt = whole.indexOf(Buffer.from('files/')) ;
  cases.push({ name: 'a header changed', path: write('flip-header.tar', flip(headerAt + 2)), error: /the backup is damaged: the header at byte \d+ fails its checksum/ });
  cases.push({ name: 'not a backup', path: write('foreign.tar', Buffer.from('hello, this is not an archive\n'.repeat(40))), error: /this is not a dojo backup/ });
  cases.push({ name: 'empty', path: write('empty.tar', Buffer.alloc(0)), error: /this is not a dojo backup \(it is empty\)/ });

  for (const c of cases) {
    const { r, dbUrl } = await restoreInto(c.path, `refused-${path.basename(c.path, '.tar')}`);
    assert.equal(r.code, 1, `${c.name}: refused (exit 1)\n${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /^dojo restore: refusing /m, c.name);
    assert.match(r.stderr, c.error, `${c.name}: ${r.stderr}`);
    const target = dbUrl.slice('sqlite:'.length);
    assert.deepEqual(readdirSync(path.dirname(target)), [], `${c.name}: nothing is written`);
    const check = await cli(['restore', c.path, '--check']);
    assert.equal(check.code, 1, `${c.name}: --check refuses it too`);
  }
});

test('a backup whose data breaks the ledger is refused by the same checks as dojo verify', async () => {
  const dir = freshDir('dojo-backup-bad-');
  const dojo = await startDojo({ dir });
  const [userId] = await makeUsers(dojo, 1);
  await dojo.adminCall('admin:grantCredits', { userId, amount: 5 });
  await dojo.stop();
  const db = path.join(dir, 'dojo.db');
  // A balance the ledger does not account for, written around dojo.
  execFileSync('sqlite3', [db, `UPDATE users SET doc = json_set(doc, '$.credits', 500) WHERE id = '${userId}'`]);
  const taken = await cli(['backup', file('bad.tar'), '--db', `sqlite:${db}`]);
  assert.equal(taken.code, 0, taken.stderr);
  const { r, dbUrl } = await restoreInto(file('bad.tar'), 'bad-restored');
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /refusing .*bad\.tar: its data is inconsistent \(\d+ violations? of the invariants `dojo verify` checks\)/);
  assert.match(r.stderr, new RegExp(`violation: .*${userId}`));
  assert.equal(existsSync(dbUrl.slice('sqlite:'.length)), false, 'nothing is put in place');
  const check = await cli(['restore', file('bad.tar'), '--check']);
  assert.equal(check.code, 1);
  assert.match(check.stderr, /its data is inconsistent/);
});

test('restore refuses to overwrite without --replace, and a database in use', async () => {
  const { r: first, dbUrl } = await restoreInto(file('live.tar'), 'twice');
  assert.equal(first.code, 0, first.stderr);
  const again = await cli(['restore', file('live.tar'), '--db', dbUrl]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /exists: add --replace to replace it/);
  const replaced = await cli(['restore', file('live.tar'), '--db', dbUrl, '--replace']);
  assert.equal(replaced.code, 0, replaced.stderr);

  const inUse = await cli(['restore', file('live.tar'), '--db', loaded.dbUrl, '--replace']);
  assert.equal(inUse.code, 1);
  assert.match(inUse.stderr, /is open in another process \(pid \d+\): stop its server before restoring/);
});

test('backup and restore explain PostgreSQL, refuse the database itself, and have --help', async () => {
  const pg = await cli(['backup', file('pg.tar'), '--db', 'postgres://u:secret@127.0.0.1:1/db']);
  assert.equal(pg.code, 2);
  assert.match(pg.stderr, /PostgreSQL: back it up with PostgreSQL's own tools \(pg_dump -Fc, or pg_basebackup/);
  assert.match(pg.stderr, /dojo export FILE --db URL/);
  assert.doesNotMatch(pg.stderr, /secret/, 'no password is printed');
  const pgRestore = await cli(['restore', file('live.tar'), '--db', 'postgres://u@127.0.0.1:1/db']);
  assert.equal(pgRestore.code, 2);
  assert.match(pgRestore.stderr, /a dojo backup holds a SQLite database/);
  const self = await cli(['backup', loaded.dbUrl.slice('sqlite:'.length) + '-wal', '--db', loaded.dbUrl]);
  assert.equal(self.code, 2);
  assert.match(self.stderr, /is the database itself/);
  const serveBackupPg = await cli(['serve', '--db', 'postgres://u@127.0.0.1:1/db', '--backup-dir', file('x')]);
  assert.equal(serveBackupPg.code, 2);
  assert.match(serveBackupPg.stderr, /--backup-dir backs up a SQLite database/);
  for (const [args, pattern] of [
    [['backup', '--help'], /Usage: dojo backup FILE/],
    [['restore', '--help'], /Usage: dojo restore FILE/],
    [['serve', '--help'], /--backup-every TIME/],
  ]) {
    const h = await cli(args);
    assert.equal(h.code, 0);
    assert.match(h.stdout, pattern);
  }
  for (const bad of ['0s', '1x', '-5m', '400d', '']) {
    const r = await cli(['serve', '--backup-dir', file('x'), '--backup-every', bad]);
    assert.equal(r.code, 2, `--backup-every ${bad}`);
    assert.match(r.stderr, /--backup-every wants a duration/);
  }
  const keep0 = await cli(['serve', '--backup-dir', file('x'), '--backup-keep', '0']);
  assert.equal(keep0.code, 2);
  assert.match(keep0.stderr, /--backup-keep wants a number from 1 to 1000/);
});

/** The scheduled backups in dir, and everything else there. */
function backupDir(dir) {
  const names = existsSync(dir) ? readdirSync(dir).sort() : [];
  return { complete: names.filter((n) => BACKUP_NAME.test(n)), other: names.filter((n) => !BACKUP_NAME.test(n)) };
}

test('the schedule keeps N complete backups, never a partial one, even when the server is killed mid-backup', async () => {
  const dir = freshDir('dojo-backup-sched-');
  const dbUrl = ballastDb(dir);
  const backups = path.join(dir, 'backups');
  const args = ['--backup-dir', backups, '--backup-every', '1s', '--backup-keep', '2'];
  const first = await startDojo({ dir, dbUrl, args });
  const [userId] = await makeUsers(first, 1);
  await first.adminCall('admin:grantCredits', { userId, amount: 3 });
  // Kill it while a backup is being written: its database copy is there.
  await waitFor(() => backupDir(backups).complete.length >= 1, { timeoutMs: 60_000, what: 'a first scheduled backup' });
  await waitFor(() => backupDir(backups).other.some((n) => n.endsWith('.db.partial')), {
    timeoutMs: 60_000,
    intervalMs: 5,
    what: 'a backup in progress',
  });
  first.proc.child.kill('SIGKILL');
  await first.proc.exitPromise;
  const afterKill = backupDir(backups);
  assert.ok(afterKill.complete.length >= 1 && afterKill.complete.length <= 3, JSON.stringify(afterKill));
  assert.deepEqual(afterKill.other.filter((n) => n.endsWith('.tar.partial') || n.endsWith('.tar')), [], 'no partial backup');
  for (const name of afterKill.complete) {
    const check = await cli(['restore', path.join(backups, name), '--check']);
    assert.equal(check.code, 0, `${name} is whole and restorable:\n${check.stderr}`);
  }

  // Restarted: the killed backup's scratch copy is removed, the schedule
  // goes on, and at most 2 remain however many are taken.
  const second = await startDojo({ dir, dbUrl, args });
  servers.push(second);
  await second.proc.waitForOutput(/backup: removed .*\.db\.partial, left by an interrupted backup/);
  const seen = new Set(afterKill.complete);
  await waitFor(
    () => {
      const now = backupDir(backups);
      assert.ok(now.complete.length <= 3, `at most keep (2) plus the one being named: ${now.complete}`);
      for (const n of now.complete) seen.add(n);
      return seen.size >= afterKill.complete.length + 3;
    },
    { timeoutMs: 90_000, intervalMs: 50, what: 'three more scheduled backups' },
  );
  await waitFor(() => backupDir(backups).complete.length === 2, { timeoutMs: 30_000, what: 'pruning to 2' });
  const metrics = (await second.http('GET', '/metrics')).text;
  const gauge = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
  assert.ok(gauge('dojo_backup_last_success_timestamp_seconds') * 1000 > Date.now() - 60_000, metrics);
  assert.ok(gauge('dojo_backup_last_success_size_bytes') > BALLAST_MIB * 1024 * 1024, metrics);
  assert.ok(gauge('dojo_backup_last_success_duration_seconds') > 0, metrics);
  assert.match(metrics, /^dojo_backups_total\{outcome="ok"\} [1-9]\d*$/m);
  const newest = backupDir(backups).complete.at(-1);
  const { r, dbUrl: restored } = await restoreInto(path.join(backups, newest), 'from-schedule');
  assert.equal(r.code, 0, r.stderr);
  const users = await idsIn(restored, 'users');
  assert.ok(users.has(userId), 'the scheduled backup holds the data');
});

test('a server stopped during a scheduled backup cancels it and exits cleanly, leaving no backup file behind', async () => {
  const dir = freshDir('dojo-backup-stop-');
  const dbUrl = ballastDb(dir);
  const backups = path.join(dir, 'backups');
  const proc = new DojoProcess(
    ['serve', '--db', dbUrl, '--listen', '127.0.0.1:0', '--backup-dir', backups, '--backup-every', '1s'],
    { cwd: dir, env: { DOJO_ADMIN_KEY: 'k'.repeat(32) } },
  );
  await proc.waitForOutput(/listening on/);
  await waitFor(() => backupDir(backups).other.some((n) => n.endsWith('.db.partial')), {
    timeoutMs: 60_000,
    intervalMs: 5,
    what: 'a backup in progress',
  });
  const complete = backupDir(backups).complete;
  await proc.stop(); // SIGTERM: exit 0, no sanitizer report
  const left = backupDir(backups);
  assert.deepEqual(left.other, [], 'the cancelled backup removed its files');
  assert.ok(left.complete.length <= complete.length + 1, JSON.stringify(left));
});
