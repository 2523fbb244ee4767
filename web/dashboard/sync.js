// sync.js — a small client of the Convex sync protocol (spec:
// convex-protocol.md §2) for the dashboard: one WebSocket to this origin's
// /api/<version>/sync, authenticated with the admin key
// ({type:"Authenticate", tokenType:"Admin", value, baseVersion:0}), over
// which the page subscribes to queries and gets every new result pushed —
// the Tables grid and the Overview charts stay current without Refresh.
//
// What it does of the protocol: Connect, then Authenticate, then one
// ModifyQuerySet adding every live query (on each new connection, versions
// start from zero); later Add/Remove as the page subscribes and
// unsubscribes (baseVersion = the last newVersion sent); Transitions are
// applied only when their startVersion is the version it holds (otherwise it
// reconnects); QueryUpdated/QueryFailed go to the subscriber; Ping only
// proves the server alive. A lost connection is retried with a growing
// delay (250 ms doubling to 5 s). An AuthError means the key was refused.
// Values arrive Convex-encoded (§4): $integer and $float are decoded to
// numbers; other values are plain JSON.
//
// Exposes window.DojoSync = { SyncClient }.
'use strict';

(() => {
  const CLIENT_VERSION = '1.0.0'; // the path segment; any is accepted
  const RETRY_MS_MIN = 250;
  const RETRY_MS_MAX = 5000;
  const ZERO_TS = 'AAAAAAAAAAA=';

  function uuid4() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function base64Bytes(text) {
    const bin = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes;
  }

  /** Convex-encoded JSON → plain values (numbers for $integer and $float). */
  function decode(value) {
    if (Array.isArray(value)) return value.map(decode);
    if (value === null || typeof value !== 'object') return value;
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === '$integer') {
      return Number(new DataView(base64Bytes(value.$integer).buffer).getBigInt64(0, true));
    }
    if (keys.length === 1 && keys[0] === '$float') {
      return new DataView(base64Bytes(value.$float).buffer).getFloat64(0, true);
    }
    const out = {};
    for (const k of keys) out[k] = decode(value[k]);
    return out;
  }

  const sameVersion = (a, b) =>
    a.querySet === b.querySet && a.identity === b.identity && a.ts === b.ts;

  class SyncClient {
    /**
     * key: the admin key. onStatus(state, detail): 'connecting' | 'live' |
     * 'offline'. onAuthError(message): the key was refused (the client stops).
     */
    constructor({ key, onStatus = () => {}, onAuthError = () => {} }) {
      this.key = key;
      this.onStatus = onStatus;
      this.onAuthError = onAuthError;
      this.sessionId = uuid4();
      this.connectionCount = 0;
      this.lastCloseReason = 'InitialConnect';
      this.nextQueryId = 0;
      this.queries = new Map(); // queryId → {udfPath, args, onValue, onError}
      this.socket = null;
      this.open = false;
      this.closed = false;
      this.retryMs = RETRY_MS_MIN;
      this.retryTimer = null;
      this.connect();
    }

    /** Subscribes; onValue(value) on every new result, onError(message). Returns an unsubscribe function. */
    subscribe(udfPath, args, onValue, onError = () => {}) {
      const queryId = this.nextQueryId++;
      this.queries.set(queryId, { udfPath, args, onValue, onError });
      if (this.open) this.modify([{ type: 'Add', queryId, udfPath, args: [args] }]);
      return () => {
        if (!this.queries.delete(queryId)) return;
        if (this.open) this.modify([{ type: 'Remove', queryId }]);
      };
    }

    /** Closes for good. */
    close() {
      this.closed = true;
      clearTimeout(this.retryTimer);
      this.queries.clear();
      if (this.socket) this.socket.close(1000, 'dashboard closed');
    }

    get live() {
      return this.open;
    }

    // --- the connection ------------------------------------------------------

    connect() {
      if (this.closed) return;
      this.onStatus('connecting');
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      const socket = new WebSocket(`${scheme}://${location.host}/api/${CLIENT_VERSION}/sync`);
      this.socket = socket;
      this.version = { querySet: 0, identity: 0, ts: ZERO_TS };
      this.querySetVersion = 0;
      socket.onopen = () => this.onOpen(socket);
      socket.onmessage = (event) => this.onMessage(socket, event);
      socket.onclose = (event) => this.onClose(socket, event);
      socket.onerror = () => {}; // onclose follows
    }

    send(message) {
      this.socket.send(JSON.stringify(message));
    }

    onOpen(socket) {
      if (socket !== this.socket) return;
      this.send({
        type: 'Connect',
        sessionId: this.sessionId,
        connectionCount: this.connectionCount,
        lastCloseReason: this.lastCloseReason,
        clientTs: Date.now(),
      });
      this.connectionCount += 1;
      this.send({ type: 'Authenticate', tokenType: 'Admin', value: this.key, baseVersion: 0 });
      this.open = true;
      const adds = [...this.queries].map(([queryId, q]) => ({ type: 'Add', queryId, udfPath: q.udfPath, args: [q.args] }));
      this.modify(adds);
    }

    modify(modifications) {
      const baseVersion = this.querySetVersion;
      this.querySetVersion += 1;
      this.send({ type: 'ModifyQuerySet', baseVersion, newVersion: this.querySetVersion, modifications });
    }

    onMessage(socket, event) {
      if (socket !== this.socket) return;
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return this.restart('a message that is not JSON');
      }
      switch (msg.type) {
        case 'Transition':
          return this.onTransition(msg);
        case 'AuthError':
          this.closed = true;
          socket.close();
          this.onStatus('offline', msg.error);
          return this.onAuthError(msg.error);
        case 'FatalError':
          return this.restart(msg.error);
        default:
          return undefined; // Ping, MutationResponse (none sent), …
      }
    }

    onTransition(msg) {
      if (!sameVersion(msg.startVersion, this.version)) {
        return this.restart('a Transition that does not follow the last one');
      }
      this.version = msg.endVersion;
      this.retryMs = RETRY_MS_MIN;
      this.onStatus('live');
      for (const m of msg.modifications) {
        const q = this.queries.get(m.queryId);
        if (!q) continue; // removed meanwhile
        if (m.type === 'QueryUpdated') q.onValue(decode(m.value));
        else if (m.type === 'QueryFailed') q.onError(m.errorMessage, m.errorData);
      }
      return undefined;
    }

    restart(reason) {
      this.lastCloseReason = reason;
      if (this.socket) this.socket.close(1000, 'restart');
    }

    onClose(socket, event) {
      if (socket !== this.socket) return;
      this.open = false;
      this.socket = null;
      if (this.closed) return;
      if (this.lastCloseReason === 'InitialConnect') this.lastCloseReason = `closed with code ${event.code}`;
      this.onStatus('offline', `reconnecting in ${Math.round(this.retryMs / 100) / 10} s`);
      this.retryTimer = setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MS_MAX);
    }
  }

  window.DojoSync = { SyncClient, decode };
})();
