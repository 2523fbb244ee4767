// bare_sync.mjs — a minimal sync-protocol session for the fan-out and
// precision benchmarks: thousands of them in one Node process, so it keeps
// almost nothing per message. It sends Connect, Authenticate and one
// ModifyQuerySet (Add), and for each Transition it stamps the arrival time
// (performance.now(), taken before the JSON is parsed) and hands the parsed
// message to onTransition. Not a measurement on its own; see fanout.mjs.

import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

export class BareSession {
  /** Opens the socket; resolves once it is open and Connect was sent. */
  static open(url, clientVersion = '1.48.0') {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/${clientVersion}/sync`, {
        perMessageDeflate: false,
      });
      ws.once('error', reject);
      ws.once('open', () => {
        ws.off('error', reject);
        resolve(new BareSession(ws));
      });
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.sessionId = randomUUID();
    this.transitions = 0; // Transitions received
    this.messages = 0; // all messages received
    this.onTransition = null; // (msg, arrivedMs) => void
    this.closedWith = null;
    this.querySet = 0;
    ws.on('message', (data) => {
      const arrived = performance.now();
      this.messages++;
      const msg = JSON.parse(data);
      if (msg.type === 'Transition') {
        this.transitions++;
        if (this.onTransition) this.onTransition(msg, arrived);
      } else if (msg.type === 'AuthError' || msg.type === 'FatalError') {
        this.closedWith = `${msg.type}: ${msg.error}`;
      }
    });
    ws.on('error', (err) => (this.closedWith ??= String(err)));
    ws.on('close', (code) => (this.closedWith ??= `closed (${code})`));
    this.send({
      type: 'Connect',
      sessionId: this.sessionId,
      connectionCount: 0,
      lastCloseReason: 'InitialConnect',
      clientTs: Date.now(),
    });
  }

  send(msg) {
    this.ws.send(JSON.stringify(msg));
  }

  authenticate(token) {
    this.send({ type: 'Authenticate', tokenType: 'User', value: token, baseVersion: 0 });
  }

  subscribe(queryId, udfPath, args = {}) {
    const base = this.querySet++;
    this.send({
      type: 'ModifyQuerySet',
      baseVersion: base,
      newVersion: this.querySet,
      modifications: [{ type: 'Add', queryId, udfPath, args: [args] }],
    });
  }

  close() {
    this.ws.terminate();
  }
}

/** The QueryUpdated value for queryId in a Transition, or undefined. */
export function updatedValue(msg, queryId) {
  for (const m of msg.modifications) if (m.queryId === queryId && m.type === 'QueryUpdated') return m.value;
  return undefined;
}
