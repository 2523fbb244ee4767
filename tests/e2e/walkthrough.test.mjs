// walkthrough.test.mjs — the README's "First minute without Clerk", run as a
// newcomer would run it. The shell commands are read out of the section's
// fenced ```sh blocks, so the README and this test cannot drift apart: the
// first block (the server) runs with bash in an empty folder, the second (the
// client: dojo token, curl users:getOrCreate, dojo run admin:grantCredits,
// curl runs:create) runs with bash in the same folder with `dojo` on PATH.
// The only change made to the commands is the port: the server listens on a
// free port instead of 3210 (`--listen 127.0.0.1:<port>` is appended to
// `dojo dev`, the URLs are rewritten and DOJO_URL points `dojo run` there).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import {
  assertNoSanitizerReport,
  dojoBin,
  dojoCli,
  freshDir,
  makeFunctionReference as ref,
  waitFor,
} from './lib/dojo.mjs';
import { ConvexHttpClient } from 'convex/browser';

const README = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md');
const SECTION = '## First minute without Clerk';
const DEFAULT_URL = 'http://127.0.0.1:3210';
const STEP_MARK = '@@walkthrough-step@@';
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

let server; // the bash process running the first block

after(async () => {
  if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
});

/** The fenced sh blocks of the README section, each as a list of commands
 *  (continuation lines joined, comments and blank lines dropped). */
function walkthroughBlocks() {
  const text = readFileSync(README, 'utf8');
  const start = text.indexOf(`\n${SECTION}\n`);
  assert.notEqual(start, -1, `README.md has no "${SECTION}" section`);
  const rest = text.slice(start + SECTION.length + 2);
  const end = rest.search(/\n## /);
  const section = end === -1 ? rest : rest.slice(0, end);
  const blocks = [...section.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)].map((m) => m[1]);
  return blocks.map((block) => {
    const commands = [];
    let current = '';
    for (const line of block.split('\n')) {
      if (!current && (line.trim() === '' || line.trim().startsWith('#'))) continue;
      if (line.endsWith('\\')) {
        current += `${line.slice(0, -1)} `;
        continue;
      }
      commands.push(`${current}${line}`.trim());
      current = '';
    }
    return commands;
  });
}

async function freePort() {
  const s = net.createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** A folder with `dojo` in it, to put first on PATH. */
function binDir() {
  const dir = freshDir('dojo-walkthrough-bin-');
  mkdirSync(dir, { recursive: true });
  symlinkSync(path.resolve(dojoBin()), path.join(dir, 'dojo'));
  return dir;
}

function shellEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('DOJO_') && !k.startsWith('CLERK_')) env[k] = v;
  return { ...env, ...extra };
}

function runBash(script, { cwd, env }) {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('the README walk-through: dev auth, a token, a user, free credits, a run', async () => {
  const [serverBlock, clientBlock] = walkthroughBlocks();
  assert.deepEqual(serverBlock, ['dojo dev --dev-auth'], 'the first block starts the server');
  assert.ok(clientBlock.length >= 4, `the second block holds the client commands: ${clientBlock}`);
  for (const needle of ['dojo token --sub user_1', 'users:getOrCreate', 'admin:grantCredits', 'runs:create']) {
    assert.ok(clientBlock.some((c) => c.includes(needle)), `the walk-through runs ${needle}`);
  }

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const cwd = freshDir('dojo-walkthrough-');
  const env = shellEnv({ PATH: `${binDir()}:${process.env.PATH}`, DOJO_URL: url });
  const withPort = (command) => command.replaceAll(DEFAULT_URL, url);

  // 1. The server, exactly as written plus the port.
  let serverOut = '';
  let serverErr = '';
  server = spawn('bash', ['-c', `exec ${serverBlock[0]} --listen 127.0.0.1:${port}`], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout.on('data', (d) => (serverOut += d));
  server.stderr.on('data', (d) => (serverErr += d));
  const exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
  await waitFor(
    () => {
      if (server.exitCode !== null) throw new Error(`dojo dev exited:\n${serverOut}\n${serverErr}`);
      return serverErr.includes('listening on');
    },
    { timeoutMs: START_TIMEOUT_MS, what: 'dojo dev --dev-auth to listen' },
  );
  assert.match(serverOut, /Dev auth\s+on/);

  // 2. The client commands in one bash session, a marker after each one.
  const commands = clientBlock.map(withPort);
  const script = ['set -euo pipefail', ...commands.map((c) => `${c}\nprintf '\\n%s\\n' '${STEP_MARK}'`)].join('\n');
  const r = await runBash(script, { cwd, env });
  assert.equal(r.code, 0, `the walk-through failed:\n${r.stdout}\n${r.stderr}\n--- server ---\n${serverErr}`);
  const outputs = r.stdout.split(`\n${STEP_MARK}\n`).map((s) => s.trim());
  const outputOf = (needle) => {
    const i = commands.findIndex((c) => c.includes(needle));
    return outputs[i];
  };

  const created = JSON.parse(outputOf('users:getOrCreate'));
  assert.equal(created.status, 'success', JSON.stringify(created));
  assert.equal(created.value.tokenIdentifier, `${url}|user_1`);
  assert.equal(created.value.email, 'me@example.com');
  assert.equal(created.value.credits, 0);

  const granted = JSON.parse(outputOf('admin:grantCredits'));
  assert.equal(granted.userId, created.value._id);
  assert.equal(granted.balance, 100);

  const run = JSON.parse(outputOf('runs:create'));
  assert.equal(run.status, 'success', JSON.stringify(run));
  assert.equal(typeof run.value, 'string');

  // 3. What the walk-through promises: the run is queued and cost the
  //    default price (1 credit), the user has 99 left, the ledger adds up.
  const token = (await dojoCli(['token', '--sub', 'user_1'], { cwd })).stdout.trim();
  const client = new ConvexHttpClient(url, { logger: false });
  client.setAuth(token);
  const me = await client.query(ref('users:me'), {});
  assert.equal(me.credits, 99);
  const stored = await client.query(ref('runs:get'), { id: run.value });
  assert.equal(stored.status, 'queued');
  assert.equal(stored.cost, 1);
  const ledger = await dojoCli(['run', 'admin:verifyLedger', '--url', url], { cwd });
  assert.equal(ledger.code, 0, ledger.stderr);
  assert.equal(JSON.parse(ledger.stdout).ok, true);
  const doctor = await dojoCli(['doctor', '--url', url, '--token', token], { cwd });
  assert.equal(doctor.code, 0, doctor.stdout);

  server.kill('SIGTERM');
  let timer;
  const stopped = await Promise.race([
    exited,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('dojo dev did not stop')), STOP_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
  assert.deepEqual(stopped, { code: 0, signal: null }, serverErr);
  assertNoSanitizerReport(serverErr, 'dojo dev');
  const verify = await dojoCli(['verify', '--db', `sqlite:${path.join(cwd, '.dojo', 'dojo.db')}`]);
  assert.equal(verify.code, 0, verify.stdout);
});
