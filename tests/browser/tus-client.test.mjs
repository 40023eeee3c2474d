// tus-js-client, the reference JavaScript tus client, under Node against the real pidrop binary
// on 127.0.0.1: a 40 MB upload in 4 MiB chunks, aborted midway, then found again through the
// client's own previous-upload lookup (its URL storage) and finished, byte-exact — into the
// upload dir, and (with a Garage started: PIDROP_TEST_S3_*) streamed into an S3 bucket, where
// the 4 MiB chunks meet 8 MiB parts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, createReadStream, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPidrop } from './pidrop.mjs';
import { createHash, randomBytes } from 'node:crypto';
import * as tus from 'tus-js-client';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.PIDROP_BIN || join(here, '../../target/debug/pidrop');
const root = mkdtempSync(join(tmpdir(), 'pidrop-tusjs-'));
const children = [];

after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

function startServer(extra = [], dir = 'uploads') {
  return startPidrop(bin, join(root, dir), extra, children);
}

// pidrop on the test bucket (`--store s3`), or null (skipped) without an S3 server.
function startS3Server(t, prefix) {
  const s3 = process.env.PIDROP_TEST_S3_ENDPOINT;
  if (!s3) {
    assert.ok(!process.env.PIDROP_TEST_S3_REQUIRED, 'PIDROP_TEST_S3_REQUIRED but no S3 endpoint');
    t.skip('no S3 server (scripts/garage.sh start DIR, then source DIR/env)');
    return null;
  }
  process.env.PIDROP_S3_ACCESS_KEY_ID = process.env.PIDROP_TEST_S3_ACCESS_KEY;
  process.env.PIDROP_S3_SECRET_ACCESS_KEY = process.env.PIDROP_TEST_S3_SECRET_KEY;
  return startServer(['--store', 's3', '--s3-endpoint', s3, '--s3-bucket', process.env.PIDROP_TEST_S3_BUCKET,
    '--s3-region', process.env.PIDROP_TEST_S3_REGION, '--s3-prefix', `${prefix}-${process.pid}/`], 'uploads-s3');
}

// An MP4 by its first bytes (an `ftyp` box), then 40 MB of random data.
function makeVideo(path, size) {
  const head = Buffer.from('00000020' + '66747970' + '69736f6d' + '00000200' + '69736f6d69736f32617663316d703431', 'hex');
  writeFileSync(path, Buffer.concat([head, randomBytes(size - head.length)]));
}

function options(base, storage, extra) {
  return {
    endpoint: `${base}/tus`,
    chunkSize: 4 << 20,
    metadata: { filename: 'holiday clip.mp4', filetype: 'video/mp4', album: 'summer' },
    urlStorage: storage,
    retryDelays: [],
    ...extra,
  };
}

async function abortedAndResumed(base, tag) {
  const file = join(root, `clip-${tag}.mp4`);
  const size = 40_000_000;
  makeVideo(file, size);
  const storage = new tus.FileUrlStorage(join(root, `tus-urls-${tag}.json`));

  // First attempt: abort once past the middle (the client stops between chunks).
  let abortedAt = 0;
  await new Promise((resolve, reject) => {
    const upload = new tus.Upload(createReadStream(file), options(base, storage, {
      onChunkComplete: (_chunk, sent, total) => {
        if (!abortedAt && sent > total / 2) {
          abortedAt = sent;
          upload.abort().then(resolve, reject);
        }
      },
      onSuccess: () => reject(new Error('finished before the abort')),
      onError: reject,
    }));
    upload.start();
  });
  assert.ok(abortedAt > size / 2 && abortedAt < size, `aborted at ${abortedAt}`);
  const listedBefore = await (await fetch(`${base}/files`)).json();
  assert.equal(listedBefore.files.length, 0, 'nothing listed while unfinished');

  // Second attempt: a new Upload finds the first through the URL storage and resumes it.
  let resumedFrom = -1;
  await new Promise((resolve, reject) => {
    const upload = new tus.Upload(createReadStream(file), options(base, storage, {
      onProgress: (sent) => { if (resumedFrom < 0) resumedFrom = sent; },
      onSuccess: resolve,
      onError: reject,
    }));
    upload.findPreviousUploads().then((previous) => {
      assert.equal(previous.length, 1, 'the aborted upload is found');
      upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    }, reject);
  });
  assert.ok(resumedFrom >= abortedAt, `resumed from ${resumedFrom}, not from 0`);

  const listed = await (await fetch(`${base}/files`)).json();
  assert.equal(listed.files.length, 1);
  const f = listed.files[0];
  assert.equal(f.original_name, 'holiday clip.mp4');
  assert.equal(f.type, 'video/mp4');
  assert.equal(f.fields.album, 'summer');
  assert.equal(f.size, size);
  const want = createHash('sha256').update(readFileSync(file)).digest('hex');
  assert.equal(f.sha256, want);
  const got = Buffer.from(await (await fetch(`${base}${f.url}`)).arrayBuffer());
  assert.equal(createHash('sha256').update(got).digest('hex'), want, 'downloaded byte-exact');
  return f;
}

test('tus-js-client: 40 MB in 4 MiB chunks, aborted midway, resumed through its previous-upload lookup', async () => {
  await abortedAndResumed(await startServer(), 'local');
});

test('tus-js-client into an S3 bucket: the same, streamed into 8 MiB parts from 4 MiB chunks', async (t) => {
  const server = startS3Server(t, 'tusjs');
  if (!server) return;
  const base = await server;
  const f = await abortedAndResumed(base, 's3');
  // Cleaned up through pidrop (the object goes with it).
  assert.equal((await fetch(base + f.url, { method: 'DELETE' })).status, 204);
});

test('tus-js-client: a refused type fails at creation, and termination removes an upload', async () => {
  const base = await startServer();
  const file = join(root, 'tool.exe');
  writeFileSync(file, randomBytes(1000));
  const err = await new Promise((resolve) => {
    const upload = new tus.Upload(createReadStream(file), {
      endpoint: `${base}/tus`, metadata: { filename: 'tool.exe' }, retryDelays: [],
      onSuccess: () => resolve(null), onError: resolve,
    });
    upload.start();
  });
  assert.ok(err, 'refused');
  assert.equal(err.originalResponse.getStatus(), 415);

  const clip = join(root, 'small.mp4');
  makeVideo(clip, 9_000_000);
  let url;
  await new Promise((resolve, reject) => {
    const upload = new tus.Upload(createReadStream(clip), {
      endpoint: `${base}/tus`, chunkSize: 4 << 20, metadata: { filename: 'small.mp4' }, retryDelays: [],
      onChunkComplete: () => { url = upload.url; upload.abort(true).then(resolve, reject); },
      onError: reject,
    });
    upload.start();
  });
  assert.ok(url && url.includes('/tus/'), url);
  const head = await fetch(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
  assert.equal(head.status, 404, 'terminated by abort(true)');
});
