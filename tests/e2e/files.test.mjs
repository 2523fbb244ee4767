// files.test.mjs — stored files (api.md §9) through the real convex client
// and fetch: the three-step upload flow, what files:* show to whom, the
// download headers and Range requests, uploads by key, the size bound,
// memory that stays bounded whatever the file's size, and uploads that
// never complete leaving nothing behind. Runs again on PostgreSQL (the
// list in CMakeLists.txt), where a second node serves what the first stored.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { api, rejectsWith, signUp } from './lib/app.mjs';
import { checkAfterEach, startDojo, waitFor } from './lib/dojo.mjs';
import {
  filesApi,
  getFile,
  postFile,
  postWithKey,
  rssBytes,
  sha256,
  storageDocs,
  storedBytes,
  streamUpload,
  uploadAs,
} from './lib/files.mjs';
import { startIssuer } from './lib/issuer.mjs';

const WORKER_KEY = `worker-${randomBytes(24).toString('hex')}`;
const PG = process.env.DOJO_E2E_STORE === 'postgres';
const MiB = 1024 * 1024;

let issuer;
let dojo;
let extra = []; // servers a test starts besides dojo
checkAfterEach(() => [dojo, ...extra]);

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer, env: { SIGNUP_CREDITS: '10', WORKER_KEY, FILE_MAX_BYTES: null } });
});
after(async () => {
  await issuer?.close();
});

const png = () => Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), randomBytes(20_000)]);

describe('the upload flow of the original backend', () => {
  test('generateUploadUrl, POST the bytes, the storage id names a file whose URL serves them', async () => {
    const a = await signUp(dojo, issuer);
    const url = await a.client.mutation(filesApi.generateUploadUrl, {});
    assert.match(url, new RegExp(`^${dojo.url}/api/storage/upload\\?token=[0-9a-f]{64}$`));
    const bytes = png();
    const res = await postFile(url, bytes, { contentType: 'image/png' });
    assert.equal(res.status, 200, res.text);
    const { storageId } = res.json;
    assert.match(storageId, /^[0-9a-z]{32}$/);

    const fileUrl = await a.client.query(filesApi.getUrl, { storageId });
    assert.equal(fileUrl, `${dojo.url}/api/storage/${storageId}`);
    const got = await getFile(fileUrl);
    assert.equal(got.status, 200);
    assert.ok(got.bytes.equals(bytes), 'the bytes served are the bytes uploaded');
    assert.equal(got.headers.get('content-type'), 'image/png');
    assert.equal(got.headers.get('content-length'), String(bytes.length));
    assert.equal(got.headers.get('etag'), `"${sha256(bytes)}"`);
    assert.equal(got.headers.get('digest'), `sha-256=${Buffer.from(sha256(bytes), 'hex').toString('base64')}`);
    assert.equal(got.headers.get('cache-control'), 'private, max-age=31536000, immutable');
    assert.equal(got.headers.get('accept-ranges'), 'bytes');

    const meta = await a.client.query(filesApi.getMetadata, { storageId });
    assert.equal(meta._id, storageId);
    assert.equal(meta.sha256, sha256(bytes));
    assert.equal(meta.size, bytes.length);
    assert.equal(meta.contentType, 'image/png');
    assert.equal(meta.owner, a.tokenIdentifier);
    assert.equal(typeof meta._creationTime, 'number');
  });

  test('an upload URL serves one upload only', async () => {
    const a = await signUp(dojo, issuer);
    const url = await a.client.mutation(filesApi.generateUploadUrl, {});
    assert.equal((await postFile(url, png())).status, 200);
    const again = await postFile(url, png());
    assert.equal(again.status, 403);
    assert.equal(again.json.code, 'UploadUrlUsed');
    const forged = await postFile(url.replace(/token=.*/, `token=${'0'.repeat(64)}`), png());
    assert.equal(forged.status, 403);
    const none = await postFile(`${dojo.url}/api/storage/upload`, png());
    assert.equal(none.status, 401);
  });

  test('a file without a Content-Type is served as application/octet-stream', async () => {
    const a = await signUp(dojo, issuer);
    const url = await a.client.mutation(filesApi.generateUploadUrl, {});
    const res = await fetch(url, { method: 'POST', body: new Uint8Array([1, 2, 3]) });
    // fetch adds no Content-Type for a typed array: nothing is recorded.
    assert.equal(res.status, 200);
    const { storageId } = await res.json();
    const got = await getFile(`${dojo.url}/api/storage/${storageId}`);
    assert.equal(got.headers.get('content-type'), 'application/octet-stream');
    assert.deepEqual([...got.bytes], [1, 2, 3]);
  });

  test('generateUploadUrl needs an identity', async () => {
    await rejectsWith(dojo.httpClient().mutation(filesApi.generateUploadUrl, {}), {
      code: 'UNAUTHENTICATED',
      message: 'No identity found',
    });
  });
});

describe('who sees which file', () => {
  test("a user sees their own uploads, not another user's", async () => {
    const a = await signUp(dojo, issuer);
    const b = await signUp(dojo, issuer);
    const storageId = await uploadAs(a.client, png());
    assert.equal(await b.client.query(filesApi.getUrl, { storageId }), null);
    assert.equal(await b.client.query(filesApi.getMetadata, { storageId }), null);
    await rejectsWith(b.client.mutation(filesApi.remove, { storageId }), {
      code: 'NOT_FOUND',
      message: 'File not found',
    });
    assert.notEqual(await a.client.query(filesApi.getUrl, { storageId }), null);
  });

  test('the owner removes an upload: its URL answers 404 and its bytes go', async () => {
    const a = await signUp(dojo, issuer);
    const bytes = randomBytes(5000); // content of its own: no other document shares it
    const storageId = await uploadAs(a.client, bytes);
    const url = await a.client.query(filesApi.getUrl, { storageId });
    const before = storedBytes(dojo).files;
    assert.equal(await a.client.mutation(filesApi.remove, { storageId }), null);
    assert.equal(await a.client.query(filesApi.getUrl, { storageId }), null);
    assert.equal(await a.client.query(filesApi.getMetadata, { storageId }), null);
    const gone = await getFile(url);
    assert.equal(gone.status, 404);
    assert.equal(JSON.parse(gone.bytes.toString()).code, 'NOT_FOUND');
    await waitFor(() => storedBytes(dojo).files === before - 1, { what: 'the bytes to be removed' });
    await rejectsWith(a.client.mutation(filesApi.remove, { storageId }), { code: 'NOT_FOUND', message: 'File not found' });
  });

  test("a run's output is the run owner's to see, and cannot be removed", async () => {
    const a = await signUp(dojo, issuer);
    const b = await signUp(dojo, issuer);
    // The output of a's run, though b uploaded it: a sees it, b keeps it.
    const storageId = await uploadAs(b.client, png());
    const runId = await a.client.mutation(api.createRun, { input: { model: 'flux', prompt: 'a fox' } });
    const worker = dojo.httpClient();
    worker.setAdminAuth(dojo.adminKey);
    await worker.mutation(api.claim, { workerId: 'w1' });
    await worker.mutation(api.complete, { id: runId, workerId: 'w1', storageId });
    const url = `${dojo.url}/api/storage/${storageId}`;
    assert.equal(await a.client.query(filesApi.getUrl, { storageId }), url);
    const run = await a.client.query(api.getRun, { id: runId });
    assert.equal(run.status, 'completed');
    assert.equal(run.outputStorageId, storageId);
    assert.equal(run.output, url);
    await rejectsWith(b.client.mutation(filesApi.remove, { storageId }), {
      code: 'INVALID_TRANSITION',
      message: 'File is the output of a run: it cannot be removed',
    });
  });

  test('an id of another table is refused by the validator', async () => {
    const a = await signUp(dojo, issuer);
    await rejectsWith(a.client.query(filesApi.getUrl, { storageId: a.user._id }), { code: 'INVALID_ARGUMENT' });
  });
});

describe('downloads', () => {
  let url;
  const bytes = randomBytes(100_000);
  before(async () => {
    const res = await postWithKey(dojo, dojo.adminKey, bytes, 'video/mp4');
    assert.equal(res.status, 200, res.text);
    url = `${dojo.url}/api/storage/${res.json.storageId}`;
  });

  test('a single range is answered 206 with its Content-Range', async () => {
    const mid = await getFile(url, { Range: 'bytes=1000-1999' });
    assert.equal(mid.status, 206);
    assert.equal(mid.headers.get('content-range'), `bytes 1000-1999/${bytes.length}`);
    assert.equal(mid.headers.get('content-length'), '1000');
    assert.ok(mid.bytes.equals(bytes.subarray(1000, 2000)));
    const open = await getFile(url, { Range: 'bytes=99000-' });
    assert.equal(open.status, 206);
    assert.ok(open.bytes.equals(bytes.subarray(99000)));
    const suffix = await getFile(url, { Range: 'bytes=-10' });
    assert.equal(suffix.status, 206);
    assert.equal(suffix.headers.get('content-range'), `bytes 99990-99999/${bytes.length}`);
    assert.ok(suffix.bytes.equals(bytes.subarray(99990)));
    const clipped = await getFile(url, { Range: 'bytes=99999-200000' });
    assert.equal(clipped.status, 206);
    assert.equal(clipped.bytes.length, 1);
  });

  test('a range outside the file is 416; several ranges get the whole file', async () => {
    const out = await getFile(url, { Range: `bytes=${bytes.length}-` });
    assert.equal(out.status, 416);
    assert.equal(out.headers.get('content-range'), `bytes */${bytes.length}`);
    const several = await getFile(url, { Range: 'bytes=0-1,5-6' });
    assert.equal(several.status, 200);
    assert.ok(several.bytes.equals(bytes));
  });

  test('HEAD says the length and sends no body; an unknown id is 404 NOT_FOUND', async () => {
    const head = await getFile(url, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(bytes.length));
    assert.equal(head.bytes.length, 0);
    const unknown = await getFile(`${dojo.url}/api/storage/${'0'.repeat(32)}`);
    assert.equal(unknown.status, 404);
    assert.equal(JSON.parse(unknown.bytes.toString()).code, 'NOT_FOUND');
  });

  test('keep-alive: requests after a download on one connection are answered in order', { timeout: 30_000 }, async () => {
    const answers = await new Promise((resolve, reject) => {
      const { port } = new URL(url);
      const sock = net.connect(Number(port), '127.0.0.1');
      const path = new URL(url).pathname;
      let data = Buffer.alloc(0);
      sock.on('data', (d) => {
        data = Buffer.concat([data, d]);
        if (data.includes('"status":"ok"')) {
          sock.destroy();
          resolve(data);
        }
      });
      sock.on('error', reject);
      sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\nGET ${path} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n`);
    });
    const text = answers.toString('latin1');
    const first = text.indexOf('HTTP/1.1 200');
    const second = text.indexOf('HTTP/1.1 206');
    const third = text.lastIndexOf('HTTP/1.1 200');
    assert.ok(first === 0 && second > first + bytes.length && third > second, 'in order, whole');
    const body = answers.subarray(text.indexOf('\r\n\r\n') + 4, text.indexOf('\r\n\r\n') + 4 + bytes.length);
    assert.ok(body.equals(bytes));
  });
});

describe('uploads by key, and their bounds', () => {
  test('the worker key and the admin key upload without a token; the file has no owner', async () => {
    for (const key of [WORKER_KEY, dojo.adminKey]) {
      const bytes = png();
      const res = await postWithKey(dojo, key, bytes);
      assert.equal(res.status, 200, res.text);
      const doc = (await storageDocs(dojo)).find((d) => d._id === res.json.storageId);
      assert.equal(doc.owner, undefined);
      assert.equal(doc.sha256, sha256(bytes));
    }
    const bad = await postWithKey(dojo, 'not-a-key', png());
    assert.equal(bad.status, 401);
  });

  test('a body over FILE_MAX_BYTES is 413, with a Content-Length or chunked, and leaves nothing', async () => {
    await dojo.cli(['env', 'set', 'FILE_MAX_BYTES', '1000']);
    try {
      await waitFor(async () => (await postWithKey(dojo, WORKER_KEY, Buffer.alloc(1001))).status === 413, {
        what: 'FILE_MAX_BYTES to take effect',
      });
      const before = storedBytes(dojo);
      const docs = (await storageDocs(dojo)).length;
      const a = await signUp(dojo, issuer);
      const url = await a.client.mutation(filesApi.generateUploadUrl, {});
      const chunked = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'image/png' },
        body: new ReadableStream({
          start(ctl) {
            for (let i = 0; i < 5; i++) ctl.enqueue(new Uint8Array(400));
            ctl.close();
          },
        }),
        duplex: 'half',
      });
      assert.equal(chunked.status, 413);
      assert.equal((await chunked.json()).code, 'PayloadTooLarge');
      assert.equal((await postFile(url, Buffer.alloc(1000))).status, 200, 'the URL is still good');
      assert.equal((await storageDocs(dojo)).length, docs + 1);
      assert.deepEqual(storedBytes(dojo), { ...before, files: before.files + 1 });
    } finally {
      await dojo.cli(['env', 'remove', 'FILE_MAX_BYTES']);
    }
  });

  test('a client that goes away mid-upload leaves no document and no bytes', async () => {
    const before = storedBytes(dojo);
    const docs = (await storageDocs(dojo)).length;
    const { port } = new URL(dojo.url);
    await new Promise((resolve, reject) => {
      const sock = net.connect(Number(port), '127.0.0.1', () => {
        sock.write(
          `POST /api/storage/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Convex ${WORKER_KEY}\r\n` +
            `Content-Type: image/png\r\nContent-Length: ${10 * MiB}\r\n\r\n`,
        );
        sock.write(randomBytes(3 * MiB), () => setTimeout(() => sock.destroy() && resolve(), 300));
      });
      sock.on('error', reject);
    });
    await waitFor(() => /upload refused .*400|upload refused/.test(dojo.stderr), { what: 'the upload to end' });
    await waitFor(() => storedBytes(dojo).temporary === 0, { what: 'the temporary file to go' });
    assert.deepEqual(storedBytes(dojo), before);
    assert.equal((await storageDocs(dojo)).length, docs);
  });

  test('a 200 MiB upload streams through with the server growing by less than 16 MiB', async () => {
    // A server of its own, so that nothing else it does moves its memory;
    // the sanitizer's quarantine of freed memory would count too: off.
    const asan = process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : '';
    const big = await startDojo({
      issuer,
      env: { FILE_MAX_BYTES: String(300 * MiB), WORKER_KEY, ASAN_OPTIONS: `${asan}quarantine_size_mb=0` },
    });
    extra.push(big);
    const pid = big.proc.pid;
    // Warm up (first upload, first query) before the baseline.
    assert.equal((await postWithKey(big, WORKER_KEY, png())).status, 200);
    const baseline = rssBytes(pid);
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssBytes(pid));
    }, 20);
    const total = 200 * MiB;
    const res = await streamUpload(`${big.url}/api/storage/upload`, total, {
      headers: { Authorization: `Convex ${WORKER_KEY}` },
    });
    clearInterval(sampler);
    peak = Math.max(peak, rssBytes(pid));
    assert.equal(res.status, 200, res.text);
    const doc = (await storageDocs(big)).find((d) => d._id === res.json.storageId);
    assert.equal(doc.size, total);
    assert.equal(doc.sha256, res.sha256);
    const growth = peak - baseline;
    assert.ok(growth < 16 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB (baseline ${(baseline / MiB).toFixed(1)} MiB)`);
    // The end of the file reads back.
    const tail = await getFile(`${big.url}/api/storage/${res.json.storageId}`, { Range: 'bytes=-4096' });
    assert.equal(tail.status, 206);
    assert.equal(tail.bytes.length, 4096);
  });
});

describe('restarts and nodes', () => {
  test('a server killed mid-upload leaves no document and no bytes after its next start', async () => {
    const victim = await startDojo({ issuer, env: { WORKER_KEY } });
    extra.push(victim);
    const docs = (await storageDocs(victim)).length;
    const kept = await postWithKey(victim, WORKER_KEY, png());
    assert.equal(kept.status, 200);
    const upload = streamUpload(`${victim.url}/api/storage/upload`, 50 * MiB, {
      headers: { Authorization: `Convex ${WORKER_KEY}` },
      pieceBytes: 256 * 1024,
      paceMs: 20, // about 12 MiB/s: still sending when the server dies
    }).catch(() => null);
    await waitFor(() => storedBytes(victim).temporary > 0 || PG, { what: 'the upload to begin' });
    await new Promise((r) => setTimeout(r, 500));
    await victim.proc.stopWith('SIGKILL');
    await upload;
    assert.doesNotMatch(victim.stderr, /upload \S+: 52428800 bytes/, 'the upload was still going');
    extra = extra.filter((s) => s !== victim);
    const again = await startDojo({ issuer, dir: victim.dir, dbUrl: victim.dbUrl, env: { WORKER_KEY } });
    extra.push(again);
    assert.equal((await storageDocs(again)).length, docs + 1);
    assert.deepEqual(storedBytes(again), { files: 1, temporary: 0 });
    const got = await getFile(`${again.url}/api/storage/${kept.json.storageId}`);
    assert.equal(got.status, 200);
  });

  test('orphan bytes (a crash between storing and recording) are removed at start', { skip: PG && 'the SQLite directory' }, async () => {
    const s = await startDojo({ issuer });
    extra.push(s);
    const stored = await postWithKey(s, s.adminKey, png());
    await s.stop();
    extra = extra.filter((x) => x !== s);
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const { filesDirOf } = await import('./lib/files.mjs');
    const dir = filesDirOf(s.dbUrl);
    const stray = 'ab'.repeat(32);
    mkdirSync(`${dir}/ab`, { recursive: true });
    writeFileSync(`${dir}/ab/${stray}`, 'bytes no document names');
    writeFileSync(`${dir}/tmp/half-written`, 'x');
    const again = await startDojo({ issuer, dir: s.dir, dbUrl: s.dbUrl });
    extra.push(again);
    assert.deepEqual(storedBytes(again), { files: 1, temporary: 0 });
    assert.match(again.stderr, /removed 1 orphan file/);
    assert.equal((await getFile(`${again.url}/api/storage/${stored.json.storageId}`)).status, 200);
  });

  test('a second node serves a file uploaded through the first', { skip: !PG && 'PostgreSQL only' }, async () => {
    const second = await startDojo({ issuer, dbUrl: dojo.dbUrl, env: { WORKER_KEY } });
    extra.push(second);
    const bytes = randomBytes(3 * MiB + 17);
    const a = await signUp(dojo, issuer);
    const storageId = await uploadAs(a.client, bytes, 'image/webp');
    const got = await getFile(`${second.url}/api/storage/${storageId}`);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('content-type'), 'image/webp');
    assert.ok(got.bytes.equals(bytes));
    const part = await getFile(`${second.url}/api/storage/${storageId}`, { Range: 'bytes=262140-262150' });
    assert.ok(part.bytes.equals(bytes.subarray(262140, 262151)), 'a range across two stored rows');
    // The user sees it through the other node too.
    const onSecond = second.httpClient(a.token);
    assert.equal(await onSecond.query(filesApi.getUrl, { storageId }), `${second.url}/api/storage/${storageId}`);
  });
});

describe('export, import and verify carry and check the files', () => {
  test('an export holds the bytes; an import restores them; verify notices bytes that changed', async () => {
    const { mkdtempSync, readFileSync, writeFileSync, readdirSync } = await import('node:fs');
    const path = await import('node:path');
    const { execFileSync } = await import('node:child_process');
    const { dojoCli, freshDir } = await import('./lib/dojo.mjs');
    const { filesDirOf, pgSchemaOf } = await import('./lib/files.mjs');
    const a = await signUp(dojo, issuer);
    const big = randomBytes(2 * MiB + 123); // three parts of 1 MiB
    const bigId = await uploadAs(a.client, big, 'video/webm');
    const small = png();
    const smallId = await uploadAs(a.client, small);
    const work = mkdtempSync(path.join(freshDir('dojo-files-export-'), 'x'));
    const file = path.join(work, 'all.jsonl');
    const exp = await dojoCli(['export', file, '--db', dojo.dbUrl]);
    assert.equal(exp.code, 0, exp.stderr);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    const header = JSON.parse(lines[0]);
    assert.equal(header.files, (await storageDocs(dojo)).length);
    const parts = lines.filter((l) => l.startsWith('{"file":')).map((l) => JSON.parse(l));
    const bigParts = parts.filter((p) => p.file === bigId);
    assert.deepEqual(bigParts.map((p) => p.part), [0, 1, 2]);
    assert.ok(Buffer.concat(bigParts.map((p) => Buffer.from(p.data, 'base64'))).equals(big));

    let target;
    if (PG) {
      const schema = `e2e_${randomBytes(6).toString('hex')}`;
      execFileSync('psql', [process.env.DOJO_TEST_PG_URL, '-qAtc', `CREATE SCHEMA ${schema}`]);
      target = `${process.env.DOJO_TEST_PG_URL}?options=-csearch_path%3D${schema}`;
    } else {
      target = `sqlite:${path.join(work, 'dojo.db')}`;
    }
    const imp = await dojoCli(['import', file, '--db', target]);
    assert.equal(imp.code, 0, imp.stderr);
    assert.match(imp.stdout, new RegExp(`${header.files} files\\)`));
    const verify = await dojoCli(['verify', '--db', target]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, new RegExp(`${header.files} files checked; 0 violations`));

    const restored = await startDojo({ issuer, dir: work, dbUrl: target });
    extra.push(restored);
    const got = await getFile(`${restored.url}/api/storage/${bigId}`);
    assert.ok(got.bytes.equals(big), 'the restored deployment serves the same bytes');
    await restored.stop();
    extra = extra.filter((s) => s !== restored);

    // Bytes that no longer hash to their document are a violation.
    if (PG) {
      execFileSync('psql', [process.env.DOJO_TEST_PG_URL, '-qAtc',
        `UPDATE ${pgSchemaOf(target)}._dojo_file_chunks SET data = 'changed'::bytea WHERE storage_id = '${smallId}'`]);
    } else {
      const dir = filesDirOf(target);
      const sha = sha256(small);
      writeFileSync(path.join(dir, sha.slice(0, 2), sha), 'changed');
      assert.ok(readdirSync(dir).length > 0);
    }
    const bad = await dojoCli(['verify', '--db', target]);
    assert.equal(bad.code, 1, bad.stdout);
    assert.match(bad.stdout, new RegExp(`violation: file ${smallId}: its bytes are 7 long`));
  });

  test('an import whose bytes do not match their documents is refused and leaves nothing', async () => {
    const { mkdtempSync, readFileSync, writeFileSync, existsSync } = await import('node:fs');
    const path = await import('node:path');
    const { dojoCli, freshDir } = await import('./lib/dojo.mjs');
    if (PG) return; // the same code path; the SQLite directory shows "nothing left" simply
    await postWithKey(dojo, WORKER_KEY, png());
    const work = mkdtempSync(path.join(freshDir('dojo-files-bad-'), 'x'));
    const file = path.join(work, 'all.jsonl');
    assert.equal((await dojoCli(['export', file, '--db', dojo.dbUrl])).code, 0);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    const i = lines.findIndex((l) => l.startsWith('{"file":'));
    const part = JSON.parse(lines[i]);
    part.data = Buffer.from('not the bytes').toString('base64');
    lines[i] = JSON.stringify(part);
    writeFileSync(file, `${lines.join('\n')}\n`);
    const target = `sqlite:${path.join(work, 'dojo.db')}`;
    const imp = await dojoCli(['import', file, '--db', target]);
    assert.equal(imp.code, 1);
    assert.match(imp.stderr, /are not those its document names/);
    assert.equal(existsSync(path.join(work, 'dojo.db')), false);
    assert.equal(existsSync(path.join(work, 'files')), false, 'no files left behind');
  });
});
