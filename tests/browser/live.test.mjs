// live.test.mjs — the dashboard is live (issue 13): Debian's Chromium, driven
// by Playwright, against a real `dojo serve`. The Tables tab is a grid with
// one column per field, nested values collapsed and expandable, sortable by
// the table's indexes; it subscribes through the sync protocol (a WebSocket
// authenticated with the admin key), so a run created through the API
// appears in the open grid and its status changes there — queued,
// processing, completed — and a balance changes, all without Refresh. The
// Overview tab draws its charts (runs per minute by status, credits per
// day, requests and errors from /metrics) and the queue from the data.
// Every test also checks that the page met no script error and no
// Content-Security-Policy refusal.
//
// Needs /usr/bin/chromium (scripts/install-deps.sh) or DOJO_CHROMIUM, and
// `npm ci` in this folder and in ../e2e.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, afterEach, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { checkAfterEach, startDojo } from '../e2e/lib/dojo.mjs';

const CHROMIUM = process.env.DOJO_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'];
const ACTION_TIMEOUT_MS = 15_000;
const LIVE_WAIT_MS = 10_000; // a push arrives in milliseconds; the sanitizer build is slow

let dojo;
let browser;
let context;
let watched;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/install-deps.sh (Debian's chromium)`);
  dojo = await startDojo();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});
checkAfterEach(() => dojo);
afterEach(async () => {
  await context?.close();
  context = null;
  if (watched) assert.deepEqual(watched.problems, [], 'the page met no script error or CSP refusal');
  watched = null;
});
after(async () => {
  await browser?.close();
});

async function openSignedIn() {
  context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(ACTION_TIMEOUT_MS);
  watched = { problems: [], sockets: [], httpCalls: [] };
  page.on('pageerror', (err) => watched.problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') watched.problems.push(`console: ${msg.text()}`);
  });
  page.on('websocket', (ws) => watched.sockets.push(ws.url()));
  page.on('request', (req) => {
    if (req.url().endsWith('/api/function')) watched.httpCalls.push(req.postData());
  });
  await page.goto(`${dojo.url}/dashboard`);
  await page.fill('#admin-key', dojo.adminKey);
  await page.click('#login-submit');
  await page.locator('#app').waitFor({ state: 'visible' });
  return page;
}

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
const cell = (page, id, field) => page.locator(`#docs tr.doc[data-id="${id}"] td[data-field="${field}"]`);

test('Tables: a run created through the API appears in the open grid and changes status live', async () => {
  const tid = uniqueTid('live');
  const user = await callAs(tid, 'users:getOrCreate');
  await dojo.adminCall('admin:grantCredits', { userId: user._id, amount: 10 });

  const page = await openSignedIn();
  await page.click('#table-list [data-table="runs"]');
  await page.locator('#browse-title', { hasText: 'runs' }).waitFor();
  await page.locator('#live-status.live').waitFor({ timeout: LIVE_WAIT_MS });
  assert.ok(watched.sockets.some((u) => /\/api\/[^/]+\/sync$/.test(u)), `a sync WebSocket: ${watched.sockets}`);
  const callsBefore = watched.httpCalls.length;

  const runId = await callAs(tid, 'runs:create', { input: { model: 'flux', prompt: 'a fox made of light', settings: { steps: 4 } } });
  await cell(page, runId, 'status').filter({ hasText: /^queued$/ }).waitFor({ timeout: LIVE_WAIT_MS });
  // One column per declared field, then _creationTime, then the whole document.
  const headers = await page.locator('#docs table.docgrid thead th').evaluateAll((ths) => ths.map((t) => t.firstChild.textContent));
  assert.deepEqual(headers, [
    '_id', 'userId', 'workflowId', 'status', 'input', 'output', 'outputStorageId', 'error', 'cost',
    'workerId', 'leaseExpiresAt', 'attempts', 'startedAt', 'finishedAt', '_creationTime', 'document',
  ]);
  assert.equal(await cell(page, runId, 'workflowId').textContent(), '—', 'an absent optional field');
  assert.equal(await page.locator('#docs tr.doc').first().getAttribute('data-id'), runId, 'newest first');
  assert.equal(await cell(page, runId, 'cost').textContent(), '1');

  // Nested values are collapsed, and open on a click.
  const input = cell(page, runId, 'input');
  assert.match(await input.locator('button.nested').textContent(), /^\{…\} 3 keys$/);
  assert.equal(await input.locator('.json').isHidden(), true);
  await input.locator('button.nested').click();
  assert.match(await input.locator('.json').textContent(), /"prompt": "a fox made of light"/);

  await dojo.adminCall('runs:claim', { workerId: 'browser-test-worker' });
  await cell(page, runId, 'status').filter({ hasText: /^processing$/ }).waitFor({ timeout: LIVE_WAIT_MS });
  assert.equal(await cell(page, runId, 'workerId').textContent(), 'browser-test-worker');
  assert.equal(await input.locator('.json').isHidden(), false, 'an opened value stays open across pushes');

  await dojo.adminCall('runs:complete', { id: runId, workerId: 'browser-test-worker', output: 'https://cdn.test/fox.png' });
  await cell(page, runId, 'status').filter({ hasText: /^completed$/ }).waitFor({ timeout: LIVE_WAIT_MS });
  assert.equal(await cell(page, runId, 'output').textContent(), 'https://cdn.test/fox.png');
  assert.equal(watched.httpCalls.length, callsBefore, 'no Refresh and no polling: the changes were pushed');
  // The row count of the table list follows too.
  const runs = (await dojo.adminCall('_system:tables')).find((t) => t.name === 'runs').count;
  await page.locator('#table-list [data-table="runs"] .count', { hasText: new RegExp(`^${runs}$`) }).waitFor();
});

test('Tables: a balance changes live, and the grid sorts by the table\'s indexes', async () => {
  const tids = [uniqueTid('sort_a'), uniqueTid('sort_b'), uniqueTid('sort_c')];
  const users = [];
  for (const tid of tids) users.push(await callAs(tid, 'users:getOrCreate'));
  const page = await openSignedIn();
  await page.locator('#browse-title', { hasText: 'users' }).waitFor(); // users is the first table
  await page.locator('#live-status.live').waitFor({ timeout: LIVE_WAIT_MS });
  const target = users[1];
  await cell(page, target._id, 'credits').filter({ hasText: /^0$/ }).waitFor();
  await dojo.adminCall('admin:grantCredits', { userId: target._id, amount: 25 });
  await cell(page, target._id, 'credits').filter({ hasText: /^25$/ }).waitFor({ timeout: LIVE_WAIT_MS });

  // Sort by the by_token index, ascending: rows in tokenIdentifier order.
  const options = await page.locator('#sort-index option').evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(options, ['by_creation_time', 'by_token', 'by_email']);
  await page.selectOption('#sort-index', 'by_token');
  await page.locator('#browse-info', { hasText: 'By by_token, descending' }).waitFor();
  await page.click('#sort-order');
  await page.locator('#browse-info', { hasText: 'By by_token, ascending' }).waitFor();
  const tokens = await page.locator('#docs tr.doc td[data-field="tokenIdentifier"]').allTextContents();
  assert.ok(tokens.length >= 3);
  assert.deepEqual(tokens, [...tokens].sort(), 'ascending by tokenIdentifier');
  // The column header of an index's first field sorts by it too.
  await page.click('#docs th[data-field="email"] button.sort');
  await page.locator('#browse-info', { hasText: 'By by_email, descending' }).waitFor();
  assert.equal(await page.inputValue('#sort-index'), 'by_email');
  // A sorted page stays live.
  const later = uniqueTid('sort_z');
  const newcomer = await callAs(later, 'users:getOrCreate');
  await page.selectOption('#sort-index', 'by_creation_time');
  await page.locator(`#docs tr.doc[data-id="${newcomer._id}"]`).waitFor({ timeout: LIVE_WAIT_MS });
});

test('Overview: the charts render from the data and /metrics, and follow new runs', async () => {
  const tid = uniqueTid('overview');
  const user = await callAs(tid, 'users:getOrCreate');
  await dojo.adminCall('admin:grantCredits', { userId: user._id, amount: 7 });
  await callAs(tid, 'runs:create', { input: { model: 'flux', prompt: 'queued for the chart' } });
  const page = await openSignedIn();
  await page.click('[data-tab="overview"]');
  await page.locator('#tab-overview').waitFor({ state: 'visible' });

  await page.locator('#chart-runs svg.chart rect.bar.s-queued').first().waitFor({ timeout: LIVE_WAIT_MS });
  assert.match(await page.locator('#chart-runs svg.chart title').first().textContent(), /Runs created per minute/);
  await page.locator('#chart-credits svg.chart rect.bar.s-granted').first().waitFor();
  await page.locator('#chart-credits svg.chart rect.bar.s-spent').first().waitFor();
  const granted = await page.locator('#chart-credits rect.bar.s-granted').evaluateAll((rs) => rs.reduce((s, r) => s + Number(r.dataset.value), 0));
  assert.ok(granted >= 7, `credits granted today include the 7 just granted (${granted})`);
  assert.match(await page.textContent('#queue-queued'), /^\d+$/);
  const queuedBefore = Number(await page.textContent('#queue-queued'));
  assert.ok(queuedBefore >= 1);
  assert.match(await page.textContent('#queue-oldest'), /^\d+ (s|min|h)$/);
  // Requests per second need two samples of /metrics (5 s apart).
  await page.locator('#chart-requests svg.chart path.line.s-requests').waitFor({ timeout: 15_000 });
  // A flat line at zero has no height: attached, not "visible".
  await page.locator('#chart-requests svg.chart path.line.s-errors5').waitFor({ state: 'attached' });
  await page.locator('#chart-requests svg.chart path.line.s-errors4').waitFor({ state: 'attached' });
  assert.match(await page.textContent('#requests-note'), /from \/metrics every 5 s/);

  // A new queued run moves the queue and the chart without a reload.
  const barsBefore = await page.locator('#chart-runs rect.bar.s-queued').evaluateAll((rs) => rs.reduce((s, r) => s + Number(r.dataset.value), 0));
  await callAs(tid, 'runs:create', { input: { model: 'flux', prompt: 'one more' } });
  await page.locator('#queue-queued', { hasText: new RegExp(`^${queuedBefore + 1}$`) }).waitFor({ timeout: LIVE_WAIT_MS });
  await page.waitForFunction(
    (before) => [...document.querySelectorAll('#chart-runs rect.bar.s-queued')].reduce((s, r) => s + Number(r.dataset.value), 0) === before + 1,
    barsBefore,
    { timeout: LIVE_WAIT_MS },
  );
});
