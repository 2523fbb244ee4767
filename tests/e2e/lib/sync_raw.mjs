// sync_raw.mjs — a bare sync-protocol client for tests that must see every
// message the server sends (counting pushes, checking versions), where the
// real ConvexClient would hide them. It speaks convex-protocol.md §2 over the
// `ws` package: Connect, Authenticate, ModifyQuerySet, Mutation, and collects
// Transitions, checking on the way that each one starts exactly where the
// previous one ended.
//
//   const c = await RawSyncClient.connect(dojo.url);
//   await c.authenticate(token);
//   c.add(0, 'users:me', {});
//   const t = await c.nextTransition();

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';

const ZERO_TS = 'AAAAAAAAAAA=';

export function tsToBigInt(b64) {
  return Buffer.from(b64, 'base64').readBigUInt64LE(0);
}

export function bigIntToTs(n) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b.toString('base64');
}

export class RawSyncClient {
  static async connect(url, { sessionId = randomUUID(), connectionCount = 0, maxObservedTimestamp } = {}) {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/1.48.0/sync`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const c = new RawSyncClient(ws, sessionId);
    c.send({
      type: 'Connect',
      sessionId,
      connectionCount,
      lastCloseReason: connectionCount ? 'closed with code 1006' : 'InitialConnect',
      clientTs: Date.now(),
      ...(maxObservedTimestamp === undefined ? {} : { maxObservedTimestamp }),
    });
    return c;
  }

  constructor(ws, sessionId) {
    this.ws = ws;
    this.sessionId = sessionId;
    this.messages = [];
    this.transitions = [];
    this.version = { querySet: 0, identity: 0, ts: ZERO_TS };
    this.querySetVersion = 0;
    this.identityVersion = 0;
    this.nextRequestId = 0;
    this.waiters = [];
    this.closed = null;
    ws.on('message', (data) => this.onMessage(JSON.parse(data.toString())));
    ws.on('close', (code) => {
      this.closed = { code };
      this.wake();
    });
  }

  send(msg) {
    this.ws.send(JSON.stringify(msg));
  }

  onMessage(msg) {
    this.messages.push(msg);
    if (msg.type === 'Transition') {
      assert.deepEqual(msg.startVersion, this.version, 'a Transition must start at the previous endVersion');
      assert.ok(
        tsToBigInt(msg.endVersion.ts) >= tsToBigInt(msg.startVersion.ts),
        'a Transition never moves the timestamp backwards',
      );
      this.version = msg.endVersion;
      this.transitions.push(msg);
    }
    this.wake();
  }

  wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Waits until pick(messages) returns something. */
  async waitFor(pick, { timeoutMs = 10_000, what = 'a message' } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = pick(this.messages);
      if (found) return found;
      if (this.closed) throw new Error(`socket closed (${this.closed.code}) while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.messages.slice(-5))}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The next Transition after the n already seen (default: all seen so far). */
  nextTransition({ after = this.transitions.length, timeoutMs } = {}) {
    return this.waitFor(() => this.transitions[after], { timeoutMs, what: `transition #${after + 1}` });
  }

  authenticate(token) {
    this.send({ type: 'Authenticate', tokenType: 'User', value: token, baseVersion: this.identityVersion });
    this.identityVersion += 1;
  }

  authenticateAdmin(key) {
    this.send({ type: 'Authenticate', tokenType: 'Admin', value: key, baseVersion: this.identityVersion });
    this.identityVersion += 1;
  }

  modify(modifications) {
    const base = this.querySetVersion;
    this.querySetVersion += 1;
    this.send({ type: 'ModifyQuerySet', baseVersion: base, newVersion: this.querySetVersion, modifications });
  }

  add(queryId, udfPath, args = {}, extra = {}) {
    this.modify([{ type: 'Add', queryId, udfPath, args: [args], ...extra }]);
  }

  remove(queryId) {
    this.modify([{ type: 'Remove', queryId }]);
  }

  /** Sends a Mutation and resolves with its MutationResponse. */
  async mutation(udfPath, args = {}, { requestId = this.nextRequestId++ } = {}) {
    this.send({ type: 'Mutation', requestId, udfPath, args: [args] });
    return this.waitFor((ms) => ms.find((m) => m.type === 'MutationResponse' && m.requestId === requestId), {
      what: `MutationResponse ${requestId}`,
    });
  }

  /** Every modification pushed for queryId so far. */
  updatesFor(queryId) {
    return this.transitions.flatMap((t) => t.modifications.filter((m) => m.queryId === queryId));
  }

  /** The latest value pushed for queryId. */
  valueOf(queryId) {
    const ups = this.updatesFor(queryId).filter((m) => m.type === 'QueryUpdated');
    return ups.length ? ups[ups.length - 1].value : undefined;
  }

  close() {
    this.ws.close();
  }

  terminate() {
    this.ws.terminate();
  }
}
