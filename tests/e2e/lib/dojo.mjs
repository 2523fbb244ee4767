// dojo.mjs — a real `dojo serve` process for the end-to-end tests, and the
// helpers the suites share.
//
// startDojo() makes a fresh directory under $DOJO_TEST_DIR (or the system
// temp dir), starts `$DOJO_BIN serve --db sqlite:<dir>/dojo.db --listen
// 127.0.0.1:0` with a random DOJO_ADMIN_KEY, and learns its URL from the
// "listening on http://HOST:PORT" line on stderr. Everything the server
// writes to stderr is kept, and printed when a test fails (see
// checkAfterEach). stop() sends SIGTERM and asserts a clean exit (status 0,
// no sanitizer report).
//
//   const dojo = await startDojo({ issuer, env: { SIGNUP_CREDITS: '50' } });
//   await dojo.adminCall('admin:verifyLedger', {});
//   await dojo.stop();

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach } from 'node:test';
import { ConvexHttpClient } from 'convex/browser';

const START_TIMEOUT_MS = 30_000; // the ASan build is slow to start
const STOP_TIMEOUT_MS = 30_000;
const CLI_TIMEOUT_MS = 30_000;
const SANITIZER_REPORT = /AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer|ThreadSanitizer/;

/** The dojo binary under test. */
export function dojoBin() {
  const bin = process.env.DOJO_BIN;
  assert.ok(bin, 'DOJO_BIN must name the dojo binary (ctest sets it)');
  return bin;
}

/** A new empty directory for one server or one command. */
export function freshDir(prefix = 'dojo-') {
  const base = process.env.DOJO_TEST_DIR || os.tmpdir();
  mkdirSync(base, { recursive: true });
  return mkdtempSync(path.join(base, prefix));
}

let emptyDirPath;
/** One empty directory per test process: where commands run unless told
 *  otherwise, so no ./.dojo of a developer's is picked up. */
function emptyDir() {
  if (!emptyDirPath) {
    emptyDirPath = freshDir('dojo-cwd-');
    process.on('exit', () => rmSync(emptyDirPath, { recursive: true, force: true }));
  }
  return emptyDirPath;
}

/** Polls check() until it returns a truthy value or the deadline passes. */
export async function waitFor(check, { timeoutMs = 10_000, intervalMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Runs the dojo binary to completion: {code, signal, stdout, stderr}.
 * env is added to (not replacing) a copy of process.env without DOJO_* and
 * CLERK_* variables, so a developer's shell cannot leak into a test.
 */
export function dojoCli(args, { cwd, env = {}, timeoutMs = CLI_TIMEOUT_MS, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(dojoBin(), args, {
      cwd: cwd ?? emptyDir(),
      env: childEnv(env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`dojo ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A command that exits without reading its input (most do) closes the
    // pipe first: EPIPE on stdin is expected then, not an error.
    child.stdin.on('error', (err) => {
      if (err.code !== 'EPIPE') reject(err);
    });
    child.stdin.end(input ?? '');
  });
}

function childEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('DOJO_') && !k.startsWith('CLERK_')) env[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined || v === null) delete env[k];
    else env[k] = String(v);
  }
  return env;
}

/** Asserts stderr holds no sanitizer report. */
export function assertNoSanitizerReport(stderr, what = 'dojo') {
  assert.doesNotMatch(stderr, SANITIZER_REPORT, `${what} reported a sanitizer error:\n${stderr}`);
}

/** A long-running dojo process (serve or dev) whose stderr and stdout are kept. */
export class DojoProcess {
  constructor(args, { cwd, env }) {
    this.stderrText = '';
    this.stdoutText = '';
    this.exited = null; // {code, signal} once the process has exited
    this.child = spawn(dojoBin(), args, { cwd, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (d) => (this.stderrText += d));
    this.child.stdout.on('data', (d) => (this.stdoutText += d));
    // 'close', not 'exit': by then all of stderr (a sanitizer report) is read.
    this.exitPromise = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.exited = { code, signal };
        resolve(this.exited);
      });
    });
  }

  get pid() {
    return this.child.pid;
  }

  /** Waits until pattern matches the text of stream ('stderr' or 'stdout'). */
  async waitForOutput(pattern, { stream = 'stderr', timeoutMs = START_TIMEOUT_MS } = {}) {
    const text = () => (stream === 'stderr' ? this.stderrText : this.stdoutText);
    return waitFor(
      () => {
        const m = text().match(pattern);
        if (m) return m;
        if (this.exited) {
          throw new Error(
            `dojo exited (${JSON.stringify(this.exited)}) before printing ${pattern}\n` +
              `stdout:\n${this.stdoutText}\nstderr:\n${this.stderrText}`,
          );
        }
        return null;
      },
      { timeoutMs, what: `${pattern} on dojo's ${stream}\n${text()}` },
    );
  }

  /** Sends signal and waits for the exit; returns {code, signal}. */
  async stopWith(signal = 'SIGTERM', { timeoutMs = STOP_TIMEOUT_MS } = {}) {
    if (!this.exited) this.child.kill(signal);
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(new Error(`dojo did not exit within ${timeoutMs} ms of ${signal}\n${this.stderrText}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exitPromise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM, then asserts a clean exit (see assertCleanExit). */
  async stop() {
    await this.stopWith('SIGTERM');
    this.assertCleanExit();
  }

  /** Asserts the process has exited with status 0 and no sanitizer report. */
  assertCleanExit() {
    assert.ok(this.exited, 'dojo has exited');
    const { code, signal } = this.exited;
    assert.equal(signal, null, `dojo was killed by ${signal}\n${this.stderrText}`);
    assert.equal(code, 0, `dojo exited with ${code}\n${this.stderrText}`);
    assertNoSanitizerReport(this.stderrText);
  }
}

/**
 * Starts `dojo serve` on a fresh SQLite database.
 *   issuer: a startIssuer() issuer whose URL becomes CLERK_ISSUER_URL (optional)
 *   env: more environment (a null value removes a variable)
 *   args: more command-line arguments
 *   dbUrl: the --db to serve instead (a postgres:// URL several servers share)
 */
export async function startDojo({ issuer, env = {}, args = [], dir, dbUrl } = {}) {
  dir ??= freshDir('dojo-serve-');
  const adminKey = `test-admin-${randomBytes(16).toString('hex')}`;
  dbUrl ??= process.env.DOJO_E2E_STORE === 'postgres' ? freshPostgresSchema() : `sqlite:${path.join(dir, 'dojo.db')}`;
  const proc = new DojoProcess(['serve', '--db', dbUrl, '--listen', '127.0.0.1:0', ...args], {
    cwd: dir,
    env: {
      DOJO_ADMIN_KEY: adminKey,
      ...(issuer ? { CLERK_ISSUER_URL: issuer.url } : {}),
      ...env,
    },
  });
  const m = await proc.waitForOutput(/listening on (http:\/\/[^\s:]+:\d+)/);
  return new Dojo(proc, { url: m[1], adminKey, dir, dbUrl });
}

/**
 * Starts `dojo dev --listen 127.0.0.1:0` in cwd (the project folder where it
 * keeps ./.dojo) and learns its URL and admin key from the banner on stdout.
 * Returns a Dojo whose proc is the dev process.
 */
export async function startDev({ cwd, env = {}, args = [] }) {
  const proc = new DojoProcess(['dev', '--listen', '127.0.0.1:0', ...args], { cwd, env });
  const url = (await proc.waitForOutput(/URL\s+(http:\/\/\S+:\d+)/, { stream: 'stdout' }))[1];
  const adminKey = (await proc.waitForOutput(/Admin key\s+(\S+)/, { stream: 'stdout' }))[1];
  return new Dojo(proc, { url, adminKey, dir: cwd, dbUrl: `sqlite:${path.join(cwd, '.dojo', 'dojo.db')}` });
}

/**
 * With DOJO_E2E_STORE=postgres (the e2e-pg.* ctest runs), every server gets
 * a schema of its own on the throwaway cluster of scripts/pg.sh
 * (DOJO_TEST_PG_URL), so the same suites prove the PostgreSQL engine.
 */
function freshPostgresSchema() {
  const base = process.env.DOJO_TEST_PG_URL;
  assert.ok(base, 'DOJO_E2E_STORE=postgres needs DOJO_TEST_PG_URL (scripts/test.sh starts a cluster)');
  const schema = `e2e_${randomBytes(6).toString('hex')}`;
  execFileSync('psql', [base, '-v', 'ON_ERROR_STOP=1', '-qAtc', `CREATE SCHEMA ${schema}`]);
  return `${base}${base.includes('?') ? '&' : '?'}options=-csearch_path%3D${schema}`;
}

/** A running server and the ways tests talk to it. */
export class Dojo {
  constructor(proc, { url, adminKey, dir, dbUrl }) {
    this.proc = proc;
    this.url = url;
    this.adminKey = adminKey;
    this.dir = dir;
    this.dbUrl = dbUrl;
  }

  /** Everything the server has written to stderr so far. */
  get stderr() {
    return this.proc.stderrText;
  }

  /** A raw request: {status, headers, text, json}. body: an object (sent as
   *  JSON), a string or a Buffer, sent as given. */
  async http(method, urlPath, { headers = {}, body } = {}) {
    const h = { ...headers };
    let payload = body;
    if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
      payload = JSON.stringify(body);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
    }
    const res = await fetch(`${this.url}${urlPath}`, { method, headers: h, body: payload });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  }

  /** POST /api/function as admin; returns the UdfResponse body. */
  async adminCallRaw(fnPath, args = {}, { adminKey = this.adminKey, format = 'json' } = {}) {
    const res = await this.http('POST', '/api/function', {
      headers: { Authorization: `Convex ${adminKey}` },
      body: { path: fnPath, args, format },
    });
    assert.equal(res.status, 200, `${fnPath} as admin: HTTP ${res.status} ${res.text}`);
    return res.json;
  }

  /** Calls any function as admin; returns its value, throws on a function error. */
  async adminCall(fnPath, args = {}) {
    const body = await this.adminCallRaw(fnPath, args);
    if (body.status !== 'success') {
      const err = new Error(`${fnPath} failed: ${body.errorMessage}`);
      err.data = body.errorData;
      throw err;
    }
    return body.value;
  }

  /** A ConvexHttpClient for this server, authenticated with token when given. */
  httpClient(token) {
    const client = new ConvexHttpClient(this.url, { logger: false });
    if (token) client.setAuth(token);
    return client;
  }

  /** Runs the dojo command line against this server (--url and --admin-key
   *  unless given in args or opts.withTarget is false). */
  cli(args, { withTarget = true, ...opts } = {}) {
    const target = withTarget ? ['--url', this.url, '--admin-key', this.adminKey] : [];
    return dojoCli([...args, ...target], opts);
  }

  /** `dojo verify --db <this server's database>`; asserts exit 0. */
  async verifyDb() {
    const r = await dojoCli(['verify', '--db', this.dbUrl]);
    assert.equal(r.code, 0, `dojo verify failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
    assertNoSanitizerReport(r.stderr, 'dojo verify');
    return r;
  }

  /** admin:verifyLedger is ok and `dojo verify` exits 0. */
  async checkInvariants() {
    const ledger = await this.adminCall('admin:verifyLedger', {});
    assert.equal(ledger.ok, true, `admin:verifyLedger: ${JSON.stringify(ledger)}`);
    assert.deepEqual(ledger.mismatches, []);
    await this.verifyDb();
  }

  /** SIGTERM and a clean exit (see DojoProcess.stop). */
  stop() {
    return this.proc.stop();
  }
}

/**
 * The hooks every suite uses, for the servers getServers() returns (those
 * started so far): after each test, the data invariants hold (verifyLedger ok,
 * `dojo verify` exits 0) and, when the test failed, each server's stderr is
 * printed; after the file, each server stops cleanly (one that a test stopped,
 * or that died, must have exited cleanly).
 */
export function checkAfterEach(getServers) {
  const servers = () => [getServers()].flat().filter(Boolean);
  let failed = false;
  afterEach(async (t) => {
    if (t.passed === false) {
      failed = true;
      for (const s of servers()) {
        process.stderr.write(
          `\n--- dojo stderr (${s.url}, data in ${s.dir}) after "${t.name}" ---\n${s.stderr}\n---\n`,
        );
      }
    }
    for (const s of servers()) {
      if (!s.proc.exited) await s.checkInvariants();
    }
  });
  after(async () => {
    for (const s of servers()) {
      if (s.proc.exited) s.proc.assertCleanExit(); // stopped by its test, or crashed
      else await s.stop();
    }
    // Keep the data of a failed file for a look; otherwise leave nothing behind.
    if (!failed) for (const s of servers()) rmSync(s.dir, { recursive: true, force: true });
  });
}

/** A function reference by name, for the convex client (no generated api). */
export { makeFunctionReference } from 'convex/server';
