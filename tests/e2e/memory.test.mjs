// memory.test.mjs — nobody can inflate the server's memory, and what a burst
// took is given back. Runs against the optimised binary without sanitizers
// (CMake points DOJO_BIN at it: AddressSanitizer's quarantine makes resident
// memory meaningless), and measures the server's resident set from
// /proc/<pid>/status.
//
//   - 1,000 clients that subscribe to a workflow another client keeps
//     changing, and never read, raise RSS by at most 64 MiB;
//   - one user saving a 1 MiB workflow 2,000 times raises it by at most 64 MiB
//     (the history of commits keeps index keys, not documents);
//   - sessions opened and closed before their first result are released at
//     once (round after round, memory does not grow);
//   - after each, RSS comes back near where it was idle.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';

import { checkAfterEach, makeFunctionReference as ref, startDojo, waitFor } from './lib/dojo.mjs';
import { newSubject, startIssuer } from './lib/issuer.mjs';

const MiB = 1024 * 1024;
const GROWTH_MAX = 64 * MiB;
const NEAR_IDLE = 24 * MiB; // what may stay once a burst is over (allocator, caches)

let issuer;
let dojo;
checkAfterEach(() => dojo);

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer });
});
after(async () => {
  await issuer?.close();
});

function rss() {
  const status = readFileSync(`/proc/${dojo.proc.pid}/status`, 'utf8');
  return Number(status.match(/VmRSS:\s+(\d+) kB/)[1]) * 1024;
}

async function settledRss() {
  // The server gives freed heap back about once a second.
  await new Promise((r) => setTimeout(r, 2500));
  return rss();
}

const mb = (n) => `${(n / MiB).toFixed(1)} MiB`;

async function signedIn() {
  const sub = newSubject();
  const token = await issuer.token({ sub, expiresIn: 3600 });
  const client = dojo.httpClient(token);
  await client.mutation(ref('users:getOrCreate'), {});
  return { sub, token, client };
}

function rawSession(token, modifications) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${dojo.url.replace(/^http/, 'ws')}/api/1.48.0/sync`);
    ws.once('error', reject);
    ws.once('open', () => {
      ws.send(JSON.stringify({ type: 'Connect', sessionId: crypto.randomUUID(), connectionCount: 0, lastCloseReason: 'InitialConnect', clientTs: Date.now() }));
      if (token) ws.send(JSON.stringify({ type: 'Authenticate', tokenType: 'User', value: token, baseVersion: 0 }));
      ws.send(JSON.stringify({ type: 'ModifyQuerySet', baseVersion: 0, newVersion: 1, modifications }));
      resolve(ws);
    });
  });
}

describe('memory', () => {
  test('1,000 clients that never read raise RSS by at most 64 MiB, and it comes back', { timeout: 300_000 }, async () => {
    const { token, client } = await signedIn();
    const wf = await client.mutation(ref('workflows:create'), { title: 'shared', nodes: ['x'.repeat(200 * 1024)] });
    const idle = await settledRss();
    const sockets = [];
    for (let i = 0; i < 1000; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, () => rawSession(token, [{ type: 'Add', queryId: 0, udfPath: 'workflows:get', args: [{ id: wf }] }])),
      );
      sockets.push(...batch);
    }
    for (const ws of sockets) ws._socket.pause(); // they read nothing from now on
    let peak = rss();
    for (let i = 0; i < 40; i++) {
      await client.mutation(ref('workflows:update'), { id: wf, nodes: [`${i}${'y'.repeat(256 * 1024)}`] });
      peak = Math.max(peak, rss());
    }
    await new Promise((r) => setTimeout(r, 500));
    peak = Math.max(peak, rss());
    console.log(`1,000 non-reading clients: idle ${mb(idle)}, peak ${mb(peak)} (+${mb(peak - idle)})`);
    assert.ok(peak - idle <= GROWTH_MAX, `RSS grew by ${mb(peak - idle)}`);
    for (const ws of sockets) ws.terminate();
    await waitFor(async () => (await dojo.http('GET', '/metrics')).text.includes('dojo_sync_sessions 0'), { what: 'sessions closed' });
    const after = await settledRss();
    console.log(`  after they left: ${mb(after)}`);
    assert.ok(after - idle <= NEAR_IDLE, `RSS stayed at ${mb(after)} (idle ${mb(idle)})`);
  });

  test('one user saving a 1 MiB workflow 2,000 times raises RSS by at most 64 MiB, and it comes back', { timeout: 600_000 }, async () => {
    const { client } = await signedIn();
    const wf = await client.mutation(ref('workflows:create'), { title: 'big' });
    const idle = await settledRss();
    const body = 'z'.repeat(1000 * 1000);
    let peak = rss();
    const SAVES = 2000;
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < SAVES) {
          const i = next++;
          await client.mutation(ref('workflows:update'), { id: wf, nodes: [`${i}${body}`] });
          if (i % 50 === 0) peak = Math.max(peak, rss());
        }
      }),
    );
    peak = Math.max(peak, rss());
    console.log(`2,000 saves of 1 MiB: idle ${mb(idle)}, peak ${mb(peak)} (+${mb(peak - idle)})`);
    assert.ok(peak - idle <= GROWTH_MAX, `RSS grew by ${mb(peak - idle)}`);
    const after = await settledRss();
    console.log(`  after: ${mb(after)}`);
    assert.ok(after - idle <= NEAR_IDLE, `RSS stayed at ${mb(after)} (idle ${mb(idle)})`);
  });

  test('sessions closed before their first result are released at once, round after round', { timeout: 300_000 }, async () => {
    const round = async () => {
      for (let i = 0; i < 2000; i += 100) {
        const batch = await Promise.all(
          Array.from({ length: 100 }, () => rawSession(null, [{ type: 'Add', queryId: 0, udfPath: 'users:me', args: [{}] }])),
        );
        for (const ws of batch) ws.terminate();
      }
      await waitFor(async () => (await dojo.http('GET', '/metrics')).text.includes('dojo_sync_sessions 0'), { what: 'sessions closed' });
      return settledRss();
    };
    const first = await round();
    await round();
    const third = await round();
    console.log(`2,000 sessions opened and closed: ${mb(first)} after the first round, ${mb(third)} after the third`);
    assert.ok(third - first <= 4 * MiB, `RSS grew by ${mb(third - first)} over two rounds`);
  });
});
