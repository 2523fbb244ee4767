// files.mjs — what the suites about stored files (api.md §9) share: the
// functions of the upload flow, uploading bytes with fetch (as a browser
// app does) or streaming them from a generator over a raw request, and
// looking at what the file store holds on disk (SQLite: the directory
// beside the database) or in PostgreSQL (the rows of _dojo_file_chunks), so
// that a test can say "nothing was left behind".

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { makeFunctionReference as ref } from 'convex/server';

export const filesApi = {
  generateUploadUrl: ref('files:generateUploadUrl'),
  getUrl: ref('files:getUrl'),
  getMetadata: ref('files:getMetadata'),
  remove: ref('files:remove'),
  queue: ref('runs:queue'),
};

export const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** POSTs bytes to an upload URL with fetch; {status, json}. */
export async function postFile(url, bytes, { contentType = 'image/png', headers = {} } = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': contentType, ...headers },
    body: bytes,
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

/** Uploads through the three-step flow of api.md §9 as a signed-in client:
 *  returns the storage id. */
export async function uploadAs(client, bytes, contentType = 'image/png') {
  const url = await client.mutation(filesApi.generateUploadUrl, {});
  const res = await postFile(url, bytes, { contentType });
  assert.equal(res.status, 200, `upload: ${res.status} ${res.text}`);
  assert.match(res.json.storageId, /^[0-9a-z]{32}$/);
  return res.json.storageId;
}

/** Uploads with a key (worker or admin) in Authorization. */
export function postWithKey(dojo, key, bytes, contentType = 'image/png') {
  return postFile(`${dojo.url}/api/storage/upload`, bytes, {
    contentType,
    headers: { Authorization: `Convex ${key}` },
  });
}

/** GETs a file: {status, headers, bytes}. */
export async function getFile(url, headers = {}, method = 'GET') {
  const res = await fetch(url, { method, headers });
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, bytes };
}

/**
 * Streams `total` bytes made by next(size) (a Buffer each call) to url as
 * one POST over a raw request with a Content-Length, hashing them on the
 * way, pausing paceMs between pieces when given. Returns {status, json,
 * sha256}.
 */
export function streamUpload(url, total, { headers = {}, pieceBytes = 1 << 20, fill, paceMs = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const req = http.request(url, {
      method: 'POST',
      headers: { 'Content-Type': 'video/mp4', 'Content-Length': String(total), ...headers },
    });
    let body = '';
    req.on('response', (res) => {
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        let json;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, json, text: body, sha256: hash.digest('hex') });
      });
    });
    req.on('error', reject);
    let sent = 0;
    let seq = 0;
    const write = () => {
      while (sent < total) {
        const n = Math.min(pieceBytes, total - sent);
        const piece = fill ? fill(n, seq++) : Buffer.alloc(n, seq++ & 0xff);
        hash.update(piece);
        sent += n;
        if (!req.write(piece)) {
          req.once('drain', () => (paceMs ? setTimeout(write, paceMs) : write()));
          return;
        }
        if (paceMs && sent < total) {
          setTimeout(write, paceMs);
          return;
        }
      }
      req.end();
    };
    write();
  });
}

/** The schema of a postgres:// URL made by startDojo (options=-csearch_path=…). */
export function pgSchemaOf(dbUrl) {
  const m = decodeURIComponent(dbUrl).match(/search_path=([A-Za-z0-9_]+)/);
  return m ? m[1] : null;
}

function psql(sql) {
  return execFileSync('psql', [process.env.DOJO_TEST_PG_URL, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], {
    encoding: 'utf8',
    env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
  }).trim();
}

/** The directory files of a SQLite deployment live in (store/files.h). */
export function filesDirOf(dbUrl) {
  const db = dbUrl.replace(/^sqlite:/, '');
  const name = path.basename(db);
  return name === 'dojo.db'
    ? path.join(path.dirname(db), 'files')
    : path.join(path.dirname(db), `${name.replace(/\.[^.]*$/, '')}.files`);
}

/**
 * What the file store holds: {files: number of stored files (SQLite) or
 * of distinct storage ids with rows (PostgreSQL), temporary: files being
 * written (SQLite only)}.
 */
export function storedBytes(dojo) {
  const schema = dojo.dbUrl.startsWith('postgres') ? pgSchemaOf(dojo.dbUrl) : null;
  if (schema) {
    const n = psql(`SELECT count(DISTINCT storage_id) FROM ${schema}._dojo_file_chunks`);
    return { files: Number(n), temporary: 0 };
  }
  const dir = filesDirOf(dojo.dbUrl);
  if (!existsSync(dir)) return { files: 0, temporary: 0 };
  let files = 0;
  for (const sub of readdirSync(dir)) {
    if (sub === 'tmp') continue;
    files += readdirSync(path.join(dir, sub)).length;
  }
  const temporary = existsSync(path.join(dir, 'tmp')) ? readdirSync(path.join(dir, 'tmp')).length : 0;
  return { files, temporary };
}

/** Every `_storage` document, through the admin's system function. */
export async function storageDocs(dojo) {
  const page = await dojo.adminCall('_system:storageList', { paginationOpts: { numItems: 1000, cursor: null } });
  return page.page;
}

/** The server process's resident memory in bytes (Linux /proc). */
export function rssBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = status.match(/VmRSS:\s+(\d+) kB/);
  assert.ok(m, 'VmRSS in /proc/PID/status');
  return Number(m[1]) * 1024;
}
