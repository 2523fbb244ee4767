// dashboard.test.mjs — the dashboard (api.md §8) as a person uses it: Debian's
// Chromium, driven by Playwright (playwright-core, no downloaded browser),
// against a real `dojo serve` started with ../e2e/lib/dojo.mjs. Each test
// opens its own browser context (fresh storage) on /dashboard, signs in with
// the admin key and works one tab: browsing users, running functions as
// admin and as a user, deployment variables, credits and the ledger check,
// and the live log. Every test also checks that the page met no script
// error, no Content-Security-Policy refusal, and never put the key in a URL.
//
// Needs /usr/bin/chromium (scripts/install-deps.sh) or DOJO_CHROMIUM, and
// `npm ci` in this folder and in ../e2e.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { checkAfterEach, DojoProcess, startDojo, waitFor } from '../e2e/lib/dojo.mjs';

const CHROMIUM = process.env.DOJO_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const ACTION_TIMEOUT_MS = 15_000; // the sanitizer build answers slowly
const LOG_REFRESH_WAIT_MS = 10_000; // the page polls every 2 s

let dojo;
let browser;
let context;
let watched; // what the current test's page did: {problems, urls}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/install-deps.sh (Debian's chromium)`);
  dojo = await startDojo();
  // launch() gives the browser a fresh temporary profile (user-data dir) of its own.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});
checkAfterEach(() => dojo);
afterEach(async () => {
  await context?.close();
  context = null;
  if (watched) {
    assert.deepEqual(watched.problems, [], 'the page met no script error or CSP refusal');
    const leaks = watched.urls.filter((u) => u.includes(dojo.adminKey));
    assert.deepEqual(leaks, [], 'the admin key never appears in a URL');
  }
  watched = null;
});
after(async () => {
  await browser?.close();
});

/** A new page in a fresh context, watched for errors and requested URLs. */
async function newPage() {
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(ACTION_TIMEOUT_MS);
  watched = { problems: [], urls: [], expected: [] };
  page.on('pageerror', (err) => watched.problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    // A refused key is a 401 the page expects; the browser still reports it.
    if (/status of 401/.test(text) && watched.expected.includes(401)) return;
    watched.problems.push(`console: ${text}`);
  });
  page.on('request', (req) => watched.urls.push(req.url()));
  return page;
}

async function openSignedIn() {
  const page = await newPage();
  await page.goto(`${dojo.url}/dashboard`);
  await page.fill('#admin-key', dojo.adminKey);
  await page.click('#login-submit');
  await page.locator('#app').waitFor({ state: 'visible' });
  return page;
}

async function openTab(page, name) {
  await page.click(`[data-tab="${name}"]`);
  await page.locator(`#tab-${name}`).waitFor({ state: 'visible' });
}

/** Calls a function as admin, or as the user tokenIdentifier (the admin
 *  key's acting-as form), over HTTP; returns the value. */
async function callAs(tokenIdentifier, path, args = {}) {
  const identity = Buffer.from(JSON.stringify({ tokenIdentifier })).toString('base64');
  const res = await dojo.http('POST', '/api/function', {
    headers: { Authorization: `Convex ${dojo.adminKey}:${identity}` },
    body: { path, args, format: 'json' },
  });
  assert.equal(res.json?.status, 'success', res.text);
  return res.json.value;
}

const uniqueTid = (name) => `https://issuer.test|${name}_${randomBytes(4).toString('hex')}`;

test('asks for the admin key, refuses a wrong one, and keeps the right one in this tab only', async () => {
  const page = await newPage();
  watched.expected.push(401);
  await page.goto(`${dojo.url}/dashboard`);
  await page.locator('#login').waitFor({ state: 'visible' });
  assert.equal(await page.isHidden('#app'), true);

  await page.fill('#admin-key', 'not-the-key');
  await page.click('#login-submit');
  await page.locator('#login-error', { hasText: 'not valid' }).waitFor();
  assert.equal(await page.isHidden('#app'), true);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);

  await page.fill('#admin-key', dojo.adminKey);
  await page.click('#login-submit');
  await page.locator('#app').waitFor({ state: 'visible' });
  assert.ok(!page.url().includes(dojo.adminKey));
  const stored = await page.evaluate(() => Object.values(sessionStorage));
  assert.deepEqual(stored, [dojo.adminKey]);
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing outlives the tab');
  assert.equal((await context.cookies()).length, 0);

  await page.reload();
  await page.locator('#app').waitFor({ state: 'visible' }); // still signed in

  await page.click('#sign-out');
  await page.locator('#login').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
});

test('Tables: counts, users newest first, Next and Previous, and the _id filter', async () => {
  const ids = [];
  for (let i = 0; i < 12; i++) ids.push((await callAs(uniqueTid(`browse${i}`), 'users:getOrCreate'))._id);
  const newest = ids.at(-1);
  const counts = Object.fromEntries((await dojo.adminCall('_system:tables')).map((t) => [t.name, t.count]));

  const page = await openSignedIn(); // Tables is the first tab; users the first table
  const usersCount = page.locator('#table-list [data-table="users"] .count');
  assert.equal(await usersCount.textContent(), String(counts.users));
  for (const table of ['users', 'workflows', 'runs', 'transactions']) {
    assert.equal(await page.locator(`#table-list [data-table="${table}"]`).count(), 1, table);
  }
  assert.equal(await page.locator('#table-list [data-table^="_"]').count(), 0, 'no system table');
  await page.locator('#browse-title', { hasText: 'users' }).waitFor();
  await page.locator(`#docs .doc[data-id="${newest}"]`).waitFor();
  assert.equal(await page.locator('#docs .doc').first().getAttribute('data-id'), newest, 'newest first');

  await page.selectOption('#page-size', '10');
  await page.waitForFunction(() => document.querySelectorAll('#docs .doc').length === 10);
  const firstPage = await page.locator('#docs .doc').evaluateAll((els) => els.map((e) => e.dataset.id));
  assert.equal(firstPage[0], newest);
  assert.equal(await page.isDisabled('#prev-page'), true);
  assert.equal(await page.isDisabled('#next-page'), false);

  await page.click('#next-page');
  await page.locator('#page-info', { hasText: 'Page 2' }).waitFor();
  const secondPage = await page.locator('#docs .doc').evaluateAll((els) => els.map((e) => e.dataset.id));
  assert.ok(secondPage.length >= 1);
  assert.deepEqual(secondPage.filter((id) => firstPage.includes(id)), [], 'a new page of documents');
  assert.equal(await page.isDisabled('#prev-page'), false);

  await page.click('#prev-page');
  await page.locator('#page-info', { hasText: 'Page 1' }).waitFor();
  assert.equal(await page.locator('#docs .doc').first().getAttribute('data-id'), newest);

  // Each document is shown whole, as formatted JSON.
  const target = ids[3];
  await page.fill('#filter-id', target);
  await page.click('#filter-apply');
  await page.waitForFunction(
    (id) => {
      const docs = document.querySelectorAll('#docs .doc');
      return docs.length === 1 && docs[0].dataset.id === id;
    },
    target,
  );
  const shown = JSON.parse(await page.locator('#docs .doc pre').textContent());
  assert.equal(shown._id, target);
  assert.equal(shown.credits, 0);
  assert.match(shown.tokenIdentifier, /^https:\/\/issuer\.test\|browse3_/);
  assert.match(await page.locator('#docs .doc pre').textContent(), /\n {2}"_id": /, 'indented JSON');

  await page.click('#filter-clear');
  await page.waitForFunction(() => document.querySelectorAll('#docs .doc').length === 10);

  await page.click('#table-list [data-table="transactions"]');
  await page.locator('#browse-title', { hasText: 'transactions' }).waitFor();
});

test('Functions: every function listed; runs one as a user and as admin; shows the error', async () => {
  const page = await openSignedIn();
  await openTab(page, 'functions');
  const listed = await page.locator('#fn-list [data-path]').evaluateAll((els) => els.map((e) => e.dataset.path));
  for (const path of ['users:getOrCreate', 'workflows:create', 'runs:claim', 'admin:grantCredits', 'admin:verifyLedger']) {
    assert.ok(listed.includes(path), `${path} is listed`);
  }
  assert.deepEqual(listed.filter((p) => p.startsWith('_system:')), []);

  // As a user: users:getOrCreate creates that user.
  const tid = uniqueTid('fn');
  await page.click('#fn-list [data-path="users:getOrCreate"]');
  await page.fill('#fn-as-user', tid);
  await page.click('#fn-run');
  await page.locator('#fn-result.success').waitFor();
  const created = JSON.parse(await page.locator('#fn-result .result-body').textContent());
  assert.equal(created.tokenIdentifier, tid);
  const stored = await dojo.adminCall('_system:browse', { table: 'users', paginationOpts: { numItems: 1, cursor: null }, id: created._id });
  assert.deepEqual(stored.page, [created]);

  // As admin: the argument hint and example come from the validator; the error shows message and data.
  await page.fill('#fn-as-user', '');
  await page.selectOption('#fn-path', 'admin:grantCredits');
  assert.match(await page.textContent('#fn-hint'), /amount: integer \(1–/);
  assert.match(await page.textContent('#fn-hint'), /userId\?: Id<"users">/);
  assert.deepEqual(JSON.parse(await page.inputValue('#fn-args')), { amount: 1 });
  await page.fill('#fn-args', JSON.stringify({ amount: 0, tokenIdentifier: tid }));
  await page.click('#fn-run');
  await page.locator('#fn-result.error').waitFor();
  assert.match(await page.textContent('#fn-result .result-title'), /^Invalid argument `amount`/);
  assert.match(await page.textContent('#fn-result .result-body'), /"code": "INVALID_ARGUMENT"/);

  await page.fill('#fn-args', JSON.stringify({ amount: 3, tokenIdentifier: tid, note: 'from the browser' }));
  await page.click('#fn-run');
  await page.locator('#fn-result.success').waitFor();
  assert.equal(JSON.parse(await page.textContent('#fn-result .result-body')).balance, 3);
  assert.match(await page.textContent('#fn-status'), /admin:grantCredits as admin: success in \d+ ms/);

  await page.fill('#fn-args', '{ not json');
  await page.click('#fn-run');
  await page.locator('#fn-result.error', { hasText: 'not valid JSON' }).waitFor();
});

test('Deployment variables: set one and see it listed, refuse a bad value, remove it', async () => {
  const page = await openSignedIn();
  await openTab(page, 'env');
  await page.fill('#env-name', 'SIGNUP_CREDITS');
  assert.match(await page.textContent('#env-help'), /new user/);
  await page.fill('#env-value', '7');
  await page.click('#env-set');
  const row = page.locator('#env-rows tr[data-name="SIGNUP_CREDITS"]');
  await row.waitFor();
  assert.equal(await row.locator('td.value').textContent(), '7');
  assert.deepEqual(await dojo.adminCall('_system:envGet', { name: 'SIGNUP_CREDITS' }), { name: 'SIGNUP_CREDITS', value: '7' });

  await page.fill('#env-name', 'MAX_ATTEMPTS');
  await page.fill('#env-value', 'lots');
  await page.click('#env-set');
  await page.locator('#env-status.error', { hasText: 'MAX_ATTEMPTS must be an integer' }).waitFor();
  assert.equal(await page.locator('#env-rows tr[data-name="MAX_ATTEMPTS"]').count(), 0);

  // Removing takes two clicks.
  await row.locator('button', { hasText: 'Remove' }).click();
  await row.locator('button', { hasText: 'Really remove?' }).click();
  await row.waitFor({ state: 'detached' });
  assert.equal(await dojo.adminCall('_system:envGet', { name: 'SIGNUP_CREDITS' }), null);
  await page.locator('#env-empty').waitFor({ state: 'visible' });
});

test('Credits: grant by tokenIdentifier and by userId, see the new balance and a clean ledger', async () => {
  const tid = uniqueTid('credits');
  const user = await callAs(tid, 'users:getOrCreate');
  const page = await openSignedIn();
  await openTab(page, 'credits');
  await page.locator('#ledger-result.success', { hasText: 'Ledger OK' }).waitFor();

  await page.selectOption('#grant-by', 'tokenIdentifier');
  await page.fill('#grant-who', tid);
  await page.fill('#grant-amount', '40');
  await page.fill('#grant-note', 'welcome');
  await page.click('#grant-submit');
  await page.locator('#grant-balance', { hasText: /^40$/ }).waitFor();
  assert.match(await page.textContent('#grant-result'), new RegExp(user._id));

  await page.selectOption('#grant-by', 'userId');
  await page.fill('#grant-who', user._id);
  await page.fill('#grant-amount', '2');
  await page.click('#grant-submit');
  await page.locator('#grant-balance', { hasText: /^42$/ }).waitFor();
  await page.locator('#ledger-result.success', { hasText: 'Ledger OK' }).waitFor();

  const stored = await dojo.adminCall('_system:browse', { table: 'users', paginationOpts: { numItems: 1, cursor: null }, id: user._id });
  assert.equal(stored.page[0].credits, 42);

  await page.selectOption('#grant-by', 'email');
  await page.fill('#grant-who', 'nobody@example.com');
  await page.click('#grant-submit');
  await page.locator('#grant-result.error', { hasText: 'User not found' }).waitFor();
});

test('Logs: recent lines, new ones within seconds, and no polling once the tab is left', async () => {
  const page = await openSignedIn();
  await openTab(page, 'logs');
  await page.locator('#log-lines .line', { hasText: 'listening on http://' }).first().waitFor();
  await page.locator('#logs-status', { hasText: 'refreshes every 2 s' }).waitFor();

  const tid = uniqueTid('logline');
  await callAs(tid, 'users:me');
  await page
    .locator('#log-lines .line', { hasText: `query users:me by ${tid}: ok` })
    .waitFor({ timeout: LOG_REFRESH_WAIT_MS });

  await openTab(page, 'tables');
  const polls = () => watched.urls.filter((u) => u.includes('/dashboard/api/logs')).length;
  await page.waitForTimeout(500); // a poll already in flight may finish
  const before = polls();
  await page.waitForTimeout(4500);
  assert.equal(polls(), before, 'the Logs tab stops polling when it is closed');
});

test("Runs and Files: a completed run's picture is shown inline, and in the Files view", async () => {
  const tid = uniqueTid('painter');
  const user = await callAs(tid, 'users:getOrCreate');
  await dojo.adminCall('admin:grantCredits', { userId: user._id, amount: 3 });
  const runId = await callAs(tid, 'runs:create', { input: { model: 'flux', prompt: 'a dojo at dawn' } });
  const here = path.dirname(fileURLToPath(import.meta.url));
  const worker = new DojoProcess(
    ['worker', '--url', dojo.url, '--exec', path.resolve(here, '../../examples/worker/render-png.sh')],
    { env: { DOJO_ADMIN_KEY: dojo.adminKey } },
  );
  let run;
  try {
    await waitFor(
      async () => {
        run = await callAs(tid, 'runs:get', { id: runId });
        return run.status === 'completed';
      },
      { timeoutMs: 30_000, what: 'the worker to complete the run' },
    );
  } finally {
    await worker.stop();
  }
  const src = `${dojo.url}/api/storage/${run.outputStorageId}`;

  const page = await openSignedIn();
  await page.locator('#table-list [data-table="runs"]').click();
  const row = page.locator(`#docs tr.doc[data-id="${runId}"]`);
  const img = row.locator('td.output[data-field="outputStorageId"] img');
  await img.waitFor({ state: 'visible' });
  assert.equal(await img.getAttribute('src'), src);
  // The picture itself was loaded and decoded: 512×512 pixels.
  await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle());
  assert.deepEqual(await img.evaluate((el) => [el.naturalWidth, el.naturalHeight]), [512, 512]);
  await page.screenshot({ path: path.join(dojo.dir, 'runs-with-output.png') });

  await openTab(page, 'files');
  const file = page.locator(`#files .file[data-id="${run.outputStorageId}"]`);
  await file.waitFor({ state: 'visible' });
  const thumb = file.locator('.thumb img');
  await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await thumb.elementHandle());
  assert.equal(await thumb.evaluate((el) => el.naturalWidth), 512);
  assert.match(await file.textContent(), /image\/png/);
  assert.match(await file.textContent(), new RegExp(runId));
  await page.screenshot({ path: path.join(dojo.dir, 'files.png') });
});
