// fulldisk.test.mjs — a full disk under a running server (SQLite on a small
// tmpfs): writes fail with an error the log names, nothing is half-written,
// reads go on, and writes resume by themselves once space returns. Needs
// root to mount the tmpfs (CI runs as root); elsewhere it is skipped and
// says why.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { checkAfterEach, freshDir, makeFunctionReference as ref, startDojo, waitFor } from './lib/dojo.mjs';
import { newSubject, startIssuer } from './lib/issuer.mjs';

const root = process.getuid?.() === 0;
let issuer;
let dojo;
let mnt;
checkAfterEach(() => dojo);

before(async () => {
  if (!root) return;
  issuer = await startIssuer();
  mnt = path.join(freshDir('dojo-fulldisk-'), 'disk');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', mnt]);
  dojo = await startDojo({ issuer, dbUrl: `sqlite:${path.join(mnt, 'dojo.db')}` });
});
after(async () => {
  await issuer?.close();
  await dojo?.proc.stopWith('SIGTERM');
  if (mnt) execFileSync('umount', ['-l', mnt]);
});

/** Fills what is left of the tmpfs with one file. */
function fill(file) {
  const chunk = Buffer.alloc(64 * 1024, 1);
  let written = 0;
  try {
    for (;;) {
      writeFileSync(file, chunk, { flag: 'a' });
      written += chunk.length;
    }
  } catch (e) {
    assert.equal(e.code, 'ENOSPC', `filling the disk: ${e.message}`);
  }
  return written;
}

describe('a full disk', { skip: root ? false : 'mounting a tmpfs needs root' }, () => {
  test('writes fail and name it in the log, reads go on, writes resume when space returns', async () => {
    const token = await issuer.token({ sub: newSubject() });
    const client = dojo.httpClient(token);
    await client.mutation(ref('users:getOrCreate'), {});
    const wf = await client.mutation(ref('workflows:create'), { title: 'before' });
    const filler = path.join(mnt, 'filler');
    fill(filler);
    // Writes that need pages the disk no longer has fail, and write nothing.
    let failed = 0;
    for (let i = 0; i < 20; i++) {
      try {
        await client.mutation(ref('workflows:create'), { title: `full ${i}`, nodes: ['x'.repeat(200 * 1024)] });
      } catch (e) {
        failed++;
        assert.doesNotMatch(e.message, /disk|SQLITE|sqlite/i, 'the client gets no internal detail');
      }
    }
    assert.ok(failed > 0, 'some write must fail on a full disk');
    assert.match(dojo.stderr, /disk is full|database or disk is full|No space left/i);
    // Reads go on.
    const listed = await client.query(ref('workflows:list'), {});
    assert.ok(listed.some((w) => w._id === wf));
    const health = await dojo.http('GET', '/health');
    assert.equal(health.status, 200, health.text);
    // Space returns: writes resume without a restart.
    rmSync(filler);
    await waitFor(
      async () => {
        try {
          await client.mutation(ref('workflows:create'), { title: 'after' });
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 10_000, what: 'writes to resume' },
    );
    const titles = (await client.query(ref('workflows:list'), {})).map((w) => w.title);
    assert.ok(titles.includes('after') && titles.includes('before'));
    // Whatever failed wrote nothing half-way: every invariant holds.
    await dojo.checkInvariants();
  });
});
