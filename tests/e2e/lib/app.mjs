// app.mjs — what the credits-and-runs suites (workflows, runs, ledger,
// isolation) share: references to the functions of api.md §3, a signed-in
// user in one call, worker clients that carry the admin key, an assertion for
// the application errors of api.md §4 (exact message and code), reading a
// whole paginated list, and a snapshot of everything a user can see, so a
// test can say "nothing changed".
//
//   const a = await signUp(dojo, issuer);          // {client, user, token, ...}
//   const worker = adminClient(dojo);              // runs:claim and friends
//   await rejectsWith(a.client.mutation(api.cancelRun, { id }), {
//     code: 'NOT_FOUND', message: 'Run not found' });

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ConvexHttpClient } from 'convex/browser';
import { makeFunctionReference as ref } from 'convex/server';

import { newSubject } from './issuer.mjs';

export const api = {
  getOrCreate: ref('users:getOrCreate'),
  me: ref('users:me'),
  createWorkflow: ref('workflows:create'),
  updateWorkflow: ref('workflows:update'),
  getWorkflow: ref('workflows:get'),
  listWorkflows: ref('workflows:list'),
  removeWorkflow: ref('workflows:remove'),
  createRun: ref('runs:create'),
  getRun: ref('runs:get'),
  listRuns: ref('runs:list'),
  cancelRun: ref('runs:cancel'),
  claim: ref('runs:claim'),
  heartbeat: ref('runs:heartbeat'),
  complete: ref('runs:complete'),
  fail: ref('runs:fail'),
  transactions: ref('transactions:list'),
  grantCredits: ref('admin:grantCredits'),
  verifyLedger: ref('admin:verifyLedger'),
};

/** Tokens outlive any one test, even on the sanitizer build. */
const TOKEN_LIFETIME_S = 600;

/** A prompt input for runs:create. */
export const input = (model = 'flux', prompt = 'a red fox in the snow') => ({ model, prompt });

/**
 * A new identity with its user created (users:getOrCreate), or only the
 * identity when create is false. Returns {sub, token, tokenIdentifier,
 * client (a ConvexHttpClient signed in), user (null when not created)}.
 */
export async function signUp(dojo, issuer, { sub = newSubject(), email, name, create = true } = {}) {
  email ??= `${sub}@example.com`;
  const token = await issuer.token({ sub, email, name }, { expiresIn: TOKEN_LIFETIME_S });
  const client = dojo.httpClient(token);
  const user = create ? await client.mutation(api.getOrCreate, {}) : null;
  return { sub, email, token, tokenIdentifier: `${issuer.url}|${sub}`, client, user };
}

/** A ConvexHttpClient that sends the admin key (`Authorization: Convex <key>`),
 *  the way a generation worker or the dashboard calls internal functions. */
export function adminClient(dojo) {
  const client = new ConvexHttpClient(dojo.url, { logger: false });
  client.setAdminAuth(dojo.adminKey);
  return client;
}

/**
 * Asserts that promise rejects with an application error of api.md §4:
 * err.data.code equals code, and the message equals message (a string:
 * exactly; a RegExp: matches). data, when given, must deep-equal err.data.
 * Returns the error.
 */
export async function rejectsWith(promise, { code, message, data }) {
  let error;
  try {
    const value = await promise;
    assert.fail(`expected ${code} "${message}", but the call succeeded with ${JSON.stringify(value)}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    error = err;
  }
  const seen = `${error.message} ${JSON.stringify(error.data)}`;
  assert.equal(error.data?.code, code, seen);
  if (typeof message === 'string') assert.equal(error.message, message, seen);
  else if (message) assert.match(error.message, message, seen);
  if (data) assert.deepEqual(error.data, data, seen);
  return error;
}

/** INVALID_ARGUMENT whose message names field in backquotes, as the
 *  validators of api.md §3 do. */
export function invalidArgument(field) {
  const escaped = field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return { code: 'INVALID_ARGUMENT', message: new RegExp(`\`${escaped}\``) };
}

/**
 * Reads a paginated query to the end with pages of numItems. Returns
 * {rows, pages} where pages are the raw results in order.
 */
export async function allPages(client, fn, args = {}, numItems = 100) {
  const pages = [];
  let cursor = null;
  for (let i = 0; i < 10_000; i++) {
    const page = await client.query(fn, { ...args, paginationOpts: { numItems, cursor } });
    pages.push(page);
    if (page.isDone) return { rows: pages.flatMap((p) => p.page), pages };
    cursor = page.continueCursor;
  }
  throw new Error('allPages: the list never ended');
}

/** Everything a signed-in user can read about themselves: users:me, every
 *  workflow (by list and by get), every run, the whole ledger. */
export async function snapshot(client) {
  const workflows = await client.query(api.listWorkflows, {});
  const byId = [];
  for (const w of workflows) byId.push(await client.query(api.getWorkflow, { id: w._id }));
  const runs = (await allPages(client, api.listRuns)).rows;
  const runsById = [];
  for (const r of runs) runsById.push(await client.query(api.getRun, { id: r._id }));
  return {
    me: await client.query(api.me, {}),
    workflows,
    workflowsById: byId,
    runs,
    runsById,
    transactions: (await allPages(client, api.transactions)).rows,
  };
}

/** Is the list ordered newest first (by _creationTime, strictly)? */
export function assertNewestFirst(rows, what = 'rows') {
  for (let i = 1; i < rows.length; i++) {
    assert.ok(
      rows[i - 1]._creationTime > rows[i]._creationTime,
      `${what} newest first: row ${i - 1} (${rows[i - 1]._creationTime}) before row ${i} (${rows[i]._creationTime})`,
    );
  }
}

/**
 * A well-formed id of a table that names no document: dojo's id format
 * (src/base/ids.h: base32 of [table number | 14 random bytes | Fletcher-16])
 * with fresh random bytes. Only for "an id that does not exist" where no
 * contract-level way to get one exists (users are never deleted).
 */
export function unusedId(tableNumber) {
  const raw = Buffer.alloc(17);
  raw[0] = tableNumber;
  randomBytes(14).copy(raw, 1);
  let a = 0;
  let b = 0;
  for (let i = 0; i < 15; i++) {
    a = (a + raw[i]) % 255;
    b = (b + a) % 255;
  }
  raw[15] = b;
  raw[16] = a;
  const alphabet = '0123456789abcdefghjkmnpqrstvwxyz';
  let out = '';
  for (let c = 0, bit = 0; c < 28; c++) {
    let v = 0;
    for (let k = 0; k < 5; k++, bit++) {
      const byte = bit >> 3;
      v = (v << 1) | (byte < 17 ? (raw[byte] >> (7 - (bit % 8))) & 1 : 0);
    }
    out += alphabet[v];
  }
  return out;
}
export const TABLE = { users: 1, workflows: 2, runs: 3, transactions: 4 };
