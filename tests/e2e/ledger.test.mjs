// ledger.test.mjs — the credit ledger and pagination (api.md §1, §3
// "transactions", "admin", "Pagination") with the real convex client:
// transactions:list newest first with every kind of row, admin:grantCredits
// by userId, email and tokenIdentifier with its argument rules and NOT_FOUND,
// grants racing creates that keep the balance equal to the ledger,
// admin:verifyLedger (and `dojo verify`) that notice a balance changed behind
// their back, and pagination exactly as usePaginatedQuery uses it: its extra
// fields, numItems bounds, 25 rows in pages of 2, endCursor that keeps a
// page's end while rows are added, and cursors that are not this query's.

import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { ConvexClient } from 'convex/browser';
import WebSocket from 'ws';

import { checkAfterEach, dojoCli, startDojo, waitFor } from './lib/dojo.mjs';
import { startIssuer } from './lib/issuer.mjs';
import {
  TABLE,
  adminClient,
  allPages,
  api,
  assertNewestFirst,
  input,
  invalidArgument,
  rejectsWith,
  signUp,
  snapshot,
  unusedId,
} from './lib/app.mjs';
import { setFieldSql } from './lib/stored_doc.mjs';

const SIGNUP = 5;
let issuer;
let dojo;
let admin;
const servers = [];

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer, env: { SIGNUP_CREDITS: String(SIGNUP), PRICING: null } });
  servers.push(dojo);
  admin = adminClient(dojo);
});
checkAfterEach(() => servers);
after(() => issuer?.close());

const credits = async (u) => (await u.client.query(api.me, {})).credits;
const ledgerOf = async (u) => (await allPages(u.client, api.transactions)).rows;
const opts = (numItems, cursor = null, extra = {}) => ({ paginationOpts: { numItems, cursor, ...extra } });
const usersChecked = async () => (await admin.query(api.verifyLedger, {})).usersChecked;

/** Each row's balanceAfter is the one before plus its amount, and the newest
 *  equals the balance (ledger given newest first). */
function assertChain(ledger, balance) {
  const oldestFirst = [...ledger].reverse();
  let sum = 0;
  for (const row of oldestFirst) {
    sum += row.amount;
    assert.equal(row.balanceAfter, sum, `balanceAfter of ${JSON.stringify(row)}`);
  }
  assert.equal(sum, balance, 'the balance is the sum of the ledger');
  if (ledger.length) assert.equal(ledger[0].balanceAfter, balance);
}

describe('transactions:list', () => {
  test("lists the caller's ledger newest first: signup, grant, run and refund rows with their fields", async () => {
    const a = await signUp(dojo, issuer);
    const granted = await admin.mutation(api.grantCredits, { userId: a.user._id, amount: 10, note: 'welcome bonus' });
    const runId = await a.client.mutation(api.createRun, { input: input() });
    await a.client.mutation(api.cancelRun, { id: runId });

    const ledger = await ledgerOf(a);
    assert.deepEqual(
      ledger.map((t) => [t.kind, t.amount, t.balanceAfter]),
      [
        ['refund', 1, 15],
        ['run', -1, 14],
        ['grant', 10, 15],
        ['signup', SIGNUP, SIGNUP],
      ],
    );
    assertNewestFirst(ledger, 'transactions:list');
    const [refund, run, grant, signup] = ledger;
    for (const row of ledger) assert.equal(row.userId, a.user._id);
    assert.equal(signup.actor, 'system');
    assert.equal(grant.actor, 'admin');
    assert.equal(grant.note, 'welcome bonus');
    assert.equal(grant._id, granted.transactionId);
    assert.equal(grant.runId, undefined);
    assert.equal(run.actor, a.tokenIdentifier);
    assert.equal(run.runId, runId);
    assert.equal(refund.runId, runId);
    assert.ok(['admin', 'system', a.tokenIdentifier].includes(refund.actor), refund.actor);
    assertChain(ledger, await credits(a));
  });

  test('a user sees only their own rows; an identity without a user gets an empty finished page', async () => {
    const a = await signUp(dojo, issuer);
    const b = await signUp(dojo, issuer);
    await admin.mutation(api.grantCredits, { userId: a.user._id, amount: 7 });
    assert.deepEqual(
      (await ledgerOf(b)).map((t) => t.kind),
      ['signup'],
    );
    const nobody = await signUp(dojo, issuer, { create: false });
    const empty = await nobody.client.query(api.transactions, opts(10));
    assert.deepEqual(empty.page, []);
    assert.equal(empty.isDone, true);
    await rejectsWith(dojo.httpClient().query(api.transactions, opts(10)), {
      code: 'UNAUTHENTICATED',
      message: 'No identity found',
    });
  });
});

describe('admin:grantCredits', () => {
  test('grants by userId, by email and by tokenIdentifier, returning {userId, balance, transactionId}', async () => {
    const a = await signUp(dojo, issuer, { email: `grant-${Date.now()}@example.com` });
    const byId = await admin.mutation(api.grantCredits, { userId: a.user._id, amount: 10 });
    assert.deepEqual(Object.keys(byId).sort(), ['balance', 'transactionId', 'userId']);
    assert.equal(byId.userId, a.user._id);
    assert.equal(byId.balance, SIGNUP + 10);
    const byEmail = await admin.mutation(api.grantCredits, { email: a.email, amount: 20, note: 'by email' });
    assert.deepEqual([byEmail.userId, byEmail.balance], [a.user._id, SIGNUP + 30]);
    const byToken = await admin.mutation(api.grantCredits, { tokenIdentifier: a.tokenIdentifier, amount: 1 });
    assert.deepEqual([byToken.userId, byToken.balance], [a.user._id, SIGNUP + 31]);

    assert.equal(await credits(a), SIGNUP + 31);
    const [t3, t2, t1] = await ledgerOf(a);
    assert.deepEqual([t1._id, t2._id, t3._id], [byId.transactionId, byEmail.transactionId, byToken.transactionId]);
    assert.deepEqual([t1.kind, t1.amount, t1.balanceAfter, t1.actor], ['grant', 10, SIGNUP + 10, 'admin']);
    assert.deepEqual([t2.kind, t2.amount, t2.balanceAfter, t2.note], ['grant', 20, SIGNUP + 30, 'by email']);
    assert.deepEqual([t3.kind, t3.amount, t3.balanceAfter], ['grant', 1, SIGNUP + 31]);
  });

  test('the dojo run admin script grants by email', async () => {
    const a = await signUp(dojo, issuer);
    const r = await dojo.cli(['run', 'admin:grantCredits', JSON.stringify({ email: a.email, amount: 100 })]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await credits(a), SIGNUP + 100);
  });

  test('exactly one selector: none, two or three are INVALID_ARGUMENT and nothing changes', async () => {
    const a = await signUp(dojo, issuer);
    const before = await snapshot(a.client);
    const cases = [
      { amount: 5 },
      { userId: a.user._id, email: a.email, amount: 5 },
      { email: a.email, tokenIdentifier: a.tokenIdentifier, amount: 5 },
      { userId: a.user._id, email: a.email, tokenIdentifier: a.tokenIdentifier, amount: 5 },
    ];
    for (const args of cases) {
      await rejectsWith(admin.mutation(api.grantCredits, args), { code: 'INVALID_ARGUMENT' });
    }
    assert.deepEqual(await snapshot(a.client), before);
  });

  test('amount must be a positive integer: 0, -5, 1.5 and "5" are refused naming amount', async () => {
    const a = await signUp(dojo, issuer);
    const before = await snapshot(a.client);
    for (const amount of [0, -5, 1.5, '5', null]) {
      await rejectsWith(admin.mutation(api.grantCredits, { userId: a.user._id, amount }), invalidArgument('amount'));
    }
    await rejectsWith(admin.mutation(api.grantCredits, { userId: a.user._id }), invalidArgument('amount'));
    assert.deepEqual(await snapshot(a.client), before);
  });

  test('unknown fields and an id of another table are refused naming the field', async () => {
    const a = await signUp(dojo, issuer);
    const runId = await a.client.mutation(api.createRun, { input: input() });
    const before = await snapshot(a.client);
    await rejectsWith(
      admin.mutation(api.grantCredits, { userId: a.user._id, amount: 5, kind: 'refund' }),
      invalidArgument('kind'),
    );
    await rejectsWith(admin.mutation(api.grantCredits, { userId: runId, amount: 5 }), invalidArgument('userId'));
    assert.deepEqual(await snapshot(a.client), before);
  });

  test('a user that does not exist is NOT_FOUND, by userId, email or tokenIdentifier', async () => {
    const before = await usersChecked();
    const nobody = await signUp(dojo, issuer, { create: false });
    for (const selector of [
      { userId: unusedId(TABLE.users) },
      { email: nobody.email },
      { tokenIdentifier: nobody.tokenIdentifier },
    ]) {
      await rejectsWith(admin.mutation(api.grantCredits, { ...selector, amount: 5 }), { code: 'NOT_FOUND' });
    }
    assert.equal(await usersChecked(), before, 'no user was created');
    assert.equal(await nobody.client.query(api.me, {}), null);
  });

  test('grants racing creates: the balance equals signup + grants − runs × cost and the ledger chains', async () => {
    const a = await signUp(dojo, issuer);
    const grantClients = [adminClient(dojo), adminClient(dojo), adminClient(dojo)];
    const GRANTS = 30;
    const CREATES = 80;
    const calls = [];
    for (let i = 0; i < Math.max(GRANTS, CREATES); i++) {
      if (i < CREATES) {
        calls.push(
          a.client.mutation(api.createRun, { input: input('flux', `race ${i}`) }, { skipQueue: true }).then(
            (id) => ({ kind: 'run', id }),
            (err) => ({ kind: 'refused', err }),
          ),
        );
      }
      if (i < GRANTS) {
        calls.push(
          grantClients[i % 3]
            .mutation(api.grantCredits, { userId: a.user._id, amount: 2 }, { skipQueue: true })
            .then((value) => ({ kind: 'grant', value })),
        );
      }
    }
    const results = await Promise.all(calls);
    const runs = results.filter((r) => r.kind === 'run');
    const refused = results.filter((r) => r.kind === 'refused');
    for (const r of refused) assert.equal(r.err.data?.code, 'INSUFFICIENT_CREDITS', r.err.message);
    assert.equal(runs.length + refused.length, CREATES);
    assert.ok(runs.length >= SIGNUP, `at least the signup credits were spent (${runs.length} runs)`);

    const balance = await credits(a);
    assert.equal(balance, SIGNUP + GRANTS * 2 - runs.length);
    const ledger = await ledgerOf(a);
    assert.equal(ledger.filter((t) => t.kind === 'grant').length, GRANTS);
    assert.equal(ledger.filter((t) => t.kind === 'run').length, runs.length);
    assertChain(ledger, balance);
    assert.equal((await allPages(a.client, api.listRuns)).rows.length, runs.length);
    // Every grant answered with a balance that some ledger row shows.
    const afters = new Set(ledger.map((t) => t.balanceAfter));
    for (const g of results.filter((r) => r.kind === 'grant')) assert.ok(afters.has(g.value.balance));
  });
});

describe('admin:verifyLedger', () => {
  test('answers {ok, usersChecked, mismatches} and counts every user', async () => {
    const first = await admin.query(api.verifyLedger, {});
    assert.deepEqual(Object.keys(first).sort(), ['mismatches', 'ok', 'usersChecked']);
    assert.equal(first.ok, true);
    assert.deepEqual(first.mismatches, []);
    await signUp(dojo, issuer);
    await signUp(dojo, issuer);
    assert.equal(await usersChecked(), first.usersChecked + 2);
  });

  // The balance is changed with the database's own shell: sqlite3, or psql
  // when the suites run on PostgreSQL (DOJO_E2E_STORE=postgres).
  const onPostgres = process.env.DOJO_E2E_STORE === 'postgres';
  const noSqliteShell =
    spawnSync(onPostgres ? 'psql' : 'sqlite3', [onPostgres ? '--version' : '-version']).status !== 0 &&
    'needs the database command-line shell';
  test(
    "a balance changed behind the ledger's back is a mismatch, and dojo verify exits non-zero",
    {
      skip: noSqliteShell,
    },
    async () => {
      const s = await startDojo({ issuer, env: { SIGNUP_CREDITS: '3' } });
      servers.push(s);
      const a = await signUp(s, issuer);
      const sqlite = (sql) =>
        onPostgres
          ? promisify(execFile)('psql', [s.dbUrl.replace(/^postgres:/, 'postgresql:'), '-v', 'ON_ERROR_STOP=1', '-qc', sql])
          : promisify(execFile)('sqlite3', ['-cmd', '.timeout 5000', path.join(s.dir, 'dojo.db'), sql]);
      const shell = async (sql) =>
        (onPostgres
          ? await promisify(execFile)('psql', [s.dbUrl.replace(/^postgres:/, 'postgresql:'), '-v', 'ON_ERROR_STOP=1', '-qAtc', sql])
          : await promisify(execFile)('sqlite3', ['-cmd', '.timeout 5000', path.join(s.dir, 'dojo.db'), sql])
        ).stdout;
      const setCredits = async (n) =>
        sqlite(
          await setFieldSql({ run: shell, postgres: onPostgres, table: 'users', id: a.user._id, field: 'credits', value: n, keyed: true }),
        );
      await setCredits(1000);
      try {
        const report = await waitFor(
          async () => {
            const r = await s.adminCall('admin:verifyLedger', {});
            return r.ok === false ? r : null;
          },
          { what: 'verifyLedger to notice' },
        );
        assert.deepEqual(report.mismatches, [{ userId: a.user._id, credits: 1000, ledgerSum: 3 }]);
        const cli = await dojoCli(['verify', '--db', s.dbUrl]);
        assert.notEqual(cli.code, 0, 'dojo verify fails');
        assert.match(cli.stdout + cli.stderr, new RegExp(a.user._id));
      } finally {
        await setCredits(3);
      }
      await waitFor(async () => (await s.adminCall('admin:verifyLedger', {})).ok, { what: 'the ledger ok again' });
    },
  );
});

describe('pagination', () => {
  /** Pages through a list with pages of numItems and asserts it yields
   *  expected (ids, newest first) exactly once, isDone only on the last page. */
  async function assertPagesThrough(client, fn, args, numItems, expected) {
    const { rows, pages } = await allPages(client, fn, args, numItems);
    const ids = rows.map((r) => r._id);
    assert.equal(new Set(ids).size, ids.length, 'no row twice');
    assert.deepEqual(ids, expected);
    pages.forEach((p, i) => {
      const last = i === pages.length - 1;
      assert.equal(p.isDone, last, `isDone on page ${i + 1} of ${pages.length}`);
      if (!last) assert.equal(p.page.length, numItems, `page ${i + 1} is full`);
      else assert.ok(p.page.length <= numItems);
      assert.equal(typeof p.continueCursor, 'string');
    });
    assertNewestFirst(rows);
  }

  test('25 runs in pages of 2: every row exactly once, newest first, isDone only at the end', async () => {
    const a = await signUp(dojo, issuer);
    await admin.mutation(api.grantCredits, { userId: a.user._id, amount: 25 - SIGNUP });
    const ids = [];
    for (let i = 0; i < 25; i++) ids.push(await a.client.mutation(api.createRun, { input: input('flux', `p${i}`) }));
    await assertPagesThrough(a.client, api.listRuns, {}, 2, [...ids].reverse());
  });

  test('25 ledger rows in pages of 2: every row exactly once, newest first, isDone only at the end', async () => {
    const a = await signUp(dojo, issuer);
    for (let i = 1; i < 25; i++) await admin.mutation(api.grantCredits, { userId: a.user._id, amount: i });
    const all = await ledgerOf(a);
    assert.equal(all.length, 25);
    assert.deepEqual(
      all.map((t) => t.amount),
      [...Array.from({ length: 24 }, (_, i) => 24 - i), SIGNUP],
    );
    await assertPagesThrough(
      a.client,
      api.transactions,
      {},
      2,
      all.map((t) => t._id),
    );
  });

  test('the extra fields usePaginatedQuery sends (id, endCursor, maximumRowsRead, maximumBytesRead) are accepted', async () => {
    const a = await signUp(dojo, issuer);
    for (let i = 0; i < 3; i++) await a.client.mutation(api.createRun, { input: input() });
    for (const fn of [api.listRuns, api.transactions]) {
      const extra = { id: 7, maximumRowsRead: 1000, maximumBytesRead: 8_000_000 };
      const first = await a.client.query(fn, opts(2, null, extra));
      assert.equal(first.page.length, 2);
      assert.equal(first.isDone, false);
      const plain = await a.client.query(fn, opts(2));
      assert.deepEqual(first.page, plain.page);
      const next = await a.client.query(fn, opts(2, first.continueCursor, { ...extra, id: 8, endCursor: null }));
      assert.ok(next.page.length >= 1);
      const pinned = await a.client.query(
        fn,
        opts(2, first.continueCursor, { ...extra, endCursor: next.continueCursor }),
      );
      assert.deepEqual(pinned.page, next.page);
    }
  });

  test('numItems outside 1–1000 and other bad paginationOpts are INVALID_ARGUMENT naming the field', async () => {
    const a = await signUp(dojo, issuer);
    for (const fn of [api.listRuns, api.transactions]) {
      for (const numItems of [0, 1001, -1, 2.5]) {
        await rejectsWith(a.client.query(fn, opts(numItems)), invalidArgument('paginationOpts.numItems'));
      }
      await rejectsWith(a.client.query(fn, {}), invalidArgument('paginationOpts'));
      await rejectsWith(
        a.client.query(fn, { paginationOpts: { numItems: 2 } }),
        invalidArgument('paginationOpts.cursor'),
      );
      await rejectsWith(a.client.query(fn, opts(2, null, { sort: 'asc' })), invalidArgument('paginationOpts.sort'));
      // The bounds themselves are fine.
      for (const numItems of [1, 1000]) assert.equal((await a.client.query(fn, opts(numItems))).isDone, true);
    }
  });

  for (const [name, fn, addRow] of [
    ['runs:list', api.listRuns, (u) => u.client.mutation(api.createRun, { input: input() })],
    [
      'transactions:list',
      api.transactions,
      async (u) => (await admin.mutation(api.grantCredits, { userId: u.user._id, amount: 1 })).transactionId,
    ],
  ]) {
    test(`${name}: a page re-requested with endCursor keeps its end after new rows are added`, async () => {
      const a = await signUp(dojo, issuer);
      await admin.mutation(api.grantCredits, { userId: a.user._id, amount: 10 });
      while ((await ledgerOf(a)).length + (await allPages(a.client, api.listRuns)).rows.length < 12) await addRow(a);
      const before = (await allPages(a.client, fn)).rows.map((r) => r._id);

      const p1 = await a.client.query(fn, opts(2));
      const p2 = await a.client.query(fn, opts(2, p1.continueCursor));
      assert.deepEqual(
        p1.page.map((r) => r._id),
        before.slice(0, 2),
      );
      assert.deepEqual(
        p2.page.map((r) => r._id),
        before.slice(2, 4),
      );

      const newer = [await addRow(a), await addRow(a)];
      const p1Again = await a.client.query(fn, opts(2, null, { endCursor: p1.continueCursor }));
      assert.deepEqual(
        p1Again.page.map((r) => r._id),
        [newer[1], newer[0], ...before.slice(0, 2)],
      );
      assert.equal(p1Again.continueCursor, p1.continueCursor, 'the page keeps its end');
      assert.equal(p1Again.isDone, false);
      const p2Again = await a.client.query(fn, opts(2, p1.continueCursor, { endCursor: p2.continueCursor }));
      assert.deepEqual(p2Again.page, p2.page, 'the next page has not shifted');
      assert.equal(p2Again.continueCursor, p2.continueCursor);

      // The rest from p2's end: all rows, once each, with the new ones first.
      const rest = (await allPages(a.client, fn, {}, 2)).rows.map((r) => r._id);
      const seen = [...p1Again.page, ...p2Again.page].map((r) => r._id);
      let cursor = p2Again.continueCursor;
      for (;;) {
        const p = await a.client.query(fn, opts(3, cursor));
        seen.push(...p.page.map((r) => r._id));
        if (p.isDone) break;
        cursor = p.continueCursor;
      }
      assert.deepEqual(seen, rest);
      assert.deepEqual(rest, [newer[1], newer[0], ...before]);
    });
  }

  test('subscribed pages with endCursor stay gapless while rows are added (ConvexClient)', async () => {
    const a = await signUp(dojo, issuer);
    await admin.mutation(api.grantCredits, { userId: a.user._id, amount: 10 });
    for (let i = 0; i < 6; i++) await a.client.mutation(api.createRun, { input: input() });
    const p1 = await a.client.query(api.listRuns, opts(2));
    const p2 = await a.client.query(api.listRuns, opts(2, p1.continueCursor));

    const ws = new ConvexClient(dojo.url, {
      webSocketConstructor: WebSocket,
      logger: false,
      unsavedChangesWarning: false,
    });
    try {
      await new Promise((resolve) =>
        ws.setAuth(
          async () => a.token,
          (ok) => ok && resolve(),
        ),
      );
      let first;
      let second;
      const un1 = ws.onUpdate(api.listRuns, opts(2, null, { id: 1, endCursor: p1.continueCursor }), (v) => (first = v));
      const un2 = ws.onUpdate(
        api.listRuns,
        opts(2, p1.continueCursor, { id: 2, endCursor: p2.continueCursor }),
        (v) => (second = v),
      );
      await waitFor(() => first && second, { what: 'both pages' });
      assert.deepEqual(first.page, p1.page);
      assert.deepEqual(second.page, p2.page);
      const added = await a.client.mutation(api.createRun, { input: input() });
      await waitFor(() => first.page.length === 3, { what: 'the new run on the first page' });
      assert.equal(first.page[0]._id, added);
      assert.deepEqual(first.page.slice(1), p1.page);
      assert.deepEqual(second.page, p2.page, 'the second page did not shift');
      un1();
      un2();
    } finally {
      await ws.close();
    }
  });

  test('a garbage cursor is refused with InvalidCursor', async () => {
    const a = await signUp(dojo, issuer);
    const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    for (const fn of [api.listRuns, api.transactions]) {
      // Also keys of the right length and prefix whose other parts are not scalars.
      const own = a.user._id;
      const shaped = [b64([own, { a: 1 }, 'z']), b64([own, 1, [2]]), b64([own, { a: 1 }, 'z', 'y'])];
      for (const cursor of ['garbage', '!!!', b64({ a: 1 }), b64([1, 2, 3]), b64('x'), ...shaped]) {
        await rejectsWith(a.client.query(fn, opts(2, cursor)), { code: 'INVALID_ARGUMENT', message: /InvalidCursor/ });
        await rejectsWith(a.client.query(fn, opts(2, null, { endCursor: cursor })), {
          code: 'INVALID_ARGUMENT',
          message: /InvalidCursor/,
        });
      }
    }
  });

  test("a cursor from another user's list is refused with InvalidCursor rather than leaking rows", async () => {
    const a = await signUp(dojo, issuer);
    const b = await signUp(dojo, issuer);
    await admin.mutation(api.grantCredits, { userId: a.user._id, amount: 5 });
    for (let i = 0; i < 5; i++) await a.client.mutation(api.createRun, { input: input() });
    await b.client.mutation(api.createRun, { input: input() });
    for (const fn of [api.listRuns, api.transactions]) {
      const aPage = await a.client.query(fn, opts(2));
      assert.equal(aPage.isDone, false);
      await rejectsWith(b.client.query(fn, opts(2, aPage.continueCursor)), {
        code: 'INVALID_ARGUMENT',
        message: /InvalidCursor/,
      });
      await rejectsWith(b.client.query(fn, opts(2, null, { endCursor: aPage.continueCursor })), {
        code: 'INVALID_ARGUMENT',
        message: /InvalidCursor/,
      });
    }
    // Nor does a filtered list take the unfiltered list's cursor.
    const aRuns = await a.client.query(api.listRuns, opts(2));
    await rejectsWith(a.client.query(api.listRuns, { ...opts(2, aRuns.continueCursor), status: 'queued' }), {
      code: 'INVALID_ARGUMENT',
      message: /InvalidCursor/,
    });
  });
});
