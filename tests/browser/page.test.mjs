// The upload page in a real browser: Debian's Chromium driven by playwright-core, against the
// real pidrop binary on 127.0.0.1. Run with `npm test` after `cargo build`
// (PIDROP_BIN overrides the binary; SCREENSHOT_DIR where screenshots go).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync, readdirSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPidrop } from './pidrop.mjs';
import { chromium } from 'playwright-core';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.PIDROP_BIN || join(here, '../../target/debug/pidrop');
const shots = process.env.SCREENSHOT_DIR || join(here, '../../target/screenshots');
let base, browser, root;
const children = [];

// A real 48×32 gradient PNG, made here (node's zlib), so the server can thumbnail it.
function makePng(w, h) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + w * 3);
    for (let x = 0; x < w; x++) row.set([Math.floor(255 * x / w), Math.floor(255 * y / h), 160], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}
const PNG = makePng(48, 32);

function startServer(extra = []) {
  root = root || mkdtempSync(join(tmpdir(), 'pidrop-browser-'));
  const dir = join(root, extra.length ? 'uploads-' + children.length : 'uploads');
  return startPidrop(bin, dir, ['--max-size', '1M', ...extra], children);
}

before(async () => {
  base = await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  mkdirSync(shots, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  for (const c of children) c.kill('SIGKILL');
  if (root) rmSync(root, { recursive: true, force: true });
});

async function openPage(options = {}, server = base) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  await page.goto(server + '/');
  return { context, page, dialogs };
}

/** The page on `server`, once it has read the server's limits. */
async function openReady(server) {
  const { context, page } = await openPage({}, server);
  await page.waitForSelector('#limits:has-text("per file")');
  return { context, page };
}

function storedCount() {
  return readdirSync(join(root, 'uploads')).filter((n) => n !== '.pidrop').length;
}

test('three files through the file input: three bars reach done, three entries listed', async () => {
  const { context, page } = await openPage({ viewport: { width: 1280, height: 900 } });
  // Each file goes with tus: a POST that creates it, then its bytes in PATCHes.
  const uploads = [];
  page.on('request', (r) => { if (r.url().startsWith(base + '/tus')) uploads.push(r.method()); });
  await page.waitForSelector('#limits:has-text("per file")');
  await page.setInputFiles('#files', [
    { name: 'holiday.png', mimeType: 'image/png', buffer: PNG },
    { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello from the browser\n') },
    { name: 'list.csv', mimeType: 'text/csv', buffer: Buffer.from('a,b\n1,2\n') },
  ]);
  await page.waitForFunction(() => document.querySelectorAll('#queue .state.done').length === 3);
  const bars = await page.$$eval('#queue progress', (ps) => ps.map((p) => p.value));
  assert.deepEqual(bars, [100, 100, 100]);
  for (const name of ['holiday.png', 'notes.txt', 'list.csv']) {
    await page.waitForSelector(`#recent a.name:text-is("${name}")`);
  }
  assert.match(await page.textContent('#total'), /3 of 3 files/);
  assert.deepEqual(uploads.sort(), ['PATCH', 'PATCH', 'PATCH', 'POST', 'POST', 'POST']);
  // The image's entry shows the server's thumbnail, loaded (a real JPEG from /thumbnails/).
  await page.waitForFunction(() => [...document.querySelectorAll('#recent img.thumb')]
    .some((img) => img.src.includes('/thumbnails/') && img.complete && img.naturalWidth > 0));
  await page.screenshot({ path: join(shots, 'desktop.png'), fullPage: true });
  await context.close();
});

test('files dropped with a DataTransfer upload the same way', async () => {
  const { context, page } = await openPage();
  await page.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['dropped text\n'], 'dropped.txt', { type: 'text/plain' }));
    dt.items.add(new File(['second\n'], 'second.md', { type: 'text/markdown' }));
    const drop = document.getElementById('drop');
    drop.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    drop.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  await page.waitForFunction(() => document.querySelectorAll('#queue .state.done').length === 2);
  await page.waitForSelector('#recent a.name:text-is("dropped.txt")');
  await context.close();
});

/** The stored file called `name`, from the listing. */
async function storedNamed(server, name) {
  const list = await (await fetch(server + '/files?limit=1000')).json();
  return list.files.find((f) => f.original_name === name);
}

test('a larger file arrives byte-exact, with the sha256 it reports', async () => {
  const { context, page } = await openPage();
  await page.waitForSelector('#limits:has-text("per file")');
  const data = Buffer.alloc(900 << 10);
  for (let i = 0; i < data.length; i++) data[i] = i % 64 === 63 ? 10 : 33 + (((i * 2654435761) >>> 24) % 94);
  await page.setInputFiles('#files', [{ name: 'large.txt', mimeType: 'text/plain', buffer: data }]);
  await page.waitForFunction(() => document.querySelectorAll('#queue .state.done').length === 1);
  const stored = await storedNamed(base, 'large.txt');
  assert.equal(stored.sha256, createHash('sha256').update(data).digest('hex'));
  const back = Buffer.from(await (await fetch(base + stored.url)).arrayBuffer());
  assert.ok(back.equals(data), 'stored bytes differ');
  assert.equal(await page.getAttribute('#queue .state.done a', 'href'), stored.url);
  await context.close();
});

test('an oversized file shows the limit message', async () => {
  const { context, page } = await openPage();
  await page.waitForSelector('#limits:has-text("1 MiB")');
  const before = storedCount();
  await page.setInputFiles('#files', [{ name: 'big.png', mimeType: 'image/png', buffer: Buffer.concat([PNG, Buffer.alloc(2 << 20)]) }]);
  const state = await page.waitForSelector('#queue .state.error');
  assert.match(await state.textContent(), /larger than the limit of 1 MiB/);
  assert.equal(storedCount(), before);
  await context.close();
});

test('a refused type shows the server message, not a network error', async () => {
  const { context, page } = await openPage();
  await page.setInputFiles('#files', [{ name: 'fake.jpg', mimeType: 'image/jpeg', buffer: Buffer.from('this is not a jpeg at all') }]);
  const state = await page.waitForSelector('#queue .state.error');
  const text = await state.textContent();
  assert.match(text, /named \.jpg but its content/);
  assert.doesNotMatch(text, /network|connection/i);
  await context.close();
});

test('a refusal while the browser is still sending shows the server message', async () => {
  // This server's disk is "full": it answers 507 from the head while Chromium sends 8 MB.
  const fullBase = await startServer(['--min-free', '1000T', '--max-size', '100M']);
  const { context, page } = await openReady(fullBase);
  await page.setInputFiles('#files', [{ name: 'big.png', mimeType: 'image/png', buffer: Buffer.concat([PNG, Buffer.alloc(8 << 20)]) }]);
  const state = await page.waitForSelector('#queue .state.error');
  const text = await state.textContent();
  assert.match(text, /not enough free space/);
  assert.doesNotMatch(text, /lost|network/i);
  await context.close();
});

test('a file named like markup shows as text and runs nothing', async () => {
  const { context, page, dialogs } = await openPage({ viewport: { width: 360, height: 780 }, isMobile: true, hasTouch: true });
  const evil = '<img src=x onerror=alert(1)>.png';
  await page.setInputFiles('#files', [{ name: evil, mimeType: 'image/png', buffer: PNG }]);
  await page.waitForFunction(() => document.querySelectorAll('#queue .state.done').length === 1);
  // The list refreshes after the upload; wait for the new entry, then read it as text.
  await page.waitForFunction((n) => [...document.querySelectorAll('#recent a.name')].some((a) => a.textContent === n), evil);
  const names = await page.$$eval('#recent a.name', (as) => as.map((a) => a.textContent));
  assert.ok(names.includes(evil), names.join(' | '));
  assert.equal(await page.$$eval('#recent img[src="x"], #queue img[src="x"]', (x) => x.length), 0);
  await page.waitForTimeout(300);
  assert.deepEqual(dialogs, []);
  // Phone width: nothing wider than the screen.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, 'horizontal overflow of ' + overflow + 'px at 360px');
  await page.screenshot({ path: join(shots, 'phone.png'), fullPage: true });
  await context.close();
});

test('the form works with JavaScript disabled', async () => {
  const { context, page } = await openPage({ javaScriptEnabled: false });
  await page.setInputFiles('#files', [{ name: 'nojs.txt', mimeType: 'text/plain', buffer: Buffer.from('no script here\n') }]);
  await Promise.all([page.waitForNavigation(), page.click('#send')]);
  const body = await page.textContent('body');
  assert.match(body, /Saved/);
  assert.match(body, /nojs\.txt/);
  await page.screenshot({ path: join(shots, 'nojs-result.png') });
  await context.close();
});

test('a page on another site cannot make the browser upload (CSRF)', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // A hostile page on another origin, served by the test itself: it auto-posts a multipart form
  // (a "simple" request: no preflight) and also tries fetch() in no-cors mode.
  await page.route('http://evil.test/**', (route) => route.fulfill({
    contentType: 'text/html',
    body: `<form id=f method=post enctype=multipart/form-data action="${base}/upload">
             <input type=hidden name=x value=1></form>
           <script>
             const fd = new FormData();
             fd.append('file', new File(['pwned'], 'pwned.txt', { type: 'text/plain' }));
             fetch('${base}/upload', { method: 'POST', mode: 'no-cors', body: fd })
               .finally(() => document.getElementById('f').submit());
           </script>`,
  }));
  const before = storedCount();
  const posted = page.waitForResponse((r) => r.url() === base + '/upload' && r.request().method() === 'POST');
  await page.goto('http://evil.test/');
  const res = await posted;
  assert.equal(res.status(), 403);
  await page.waitForLoadState('load');
  assert.match(await page.textContent('body'), /forbidden_origin/);
  assert.equal(storedCount(), before);
  await context.close();
});

test('the page sends its own CSP and no inline script', async () => {
  const res = await fetch(base + '/');
  const csp = res.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  const html = await res.text();
  assert.doesNotMatch(html, /<script>(?!<\/script>)/);
  assert.doesNotMatch(html, /\son\w+=/);
});

test('a file dropped anywhere on the page is uploaded, and a drop never leaves the page', async () => {
  const { context, page } = await openPage();
  await page.waitForSelector('#limits:has-text("per file")');
  const prevented = await page.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['near miss\n'], 'near-miss.txt', { type: 'text/plain' }));
    const target = document.querySelector('#recent-title'); // well outside the drop zone
    const fire = (type) => {
      const ev = new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true });
      target.dispatchEvent(ev);
      return ev.defaultPrevented;
    };
    const entered = fire('dragenter');
    const over = fire('dragover');
    const highlighted = document.getElementById('drop').classList.contains('over');
    const dropped = fire('drop');
    return { entered, over, highlighted, dropped };
  });
  // A drop the page did not prevent is one the browser handles by opening the file.
  assert.deepEqual(prevented, { entered: true, over: true, highlighted: true, dropped: true });
  await page.waitForSelector('#recent a.name:text-is("near-miss.txt")');
  assert.equal(page.url(), base + '/');
  assert.equal(await page.$eval('#drop', (d) => d.classList.contains('over')), false);
  await context.close();
});

test('the tab icon, touch icon and web app manifest are served and load without console errors', async () => {
  const { context, page } = await openPage({ viewport: { width: 390, height: 844 }, isMobile: true });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('response', (r) => { if (r.status() >= 400) errors.push(r.status() + ' ' + r.url()); });
  await page.reload();
  await page.waitForSelector('#limits:has-text("per file")');
  const manifestHref = await page.$eval('link[rel=manifest]', (l) => l.href);
  const manifest = await (await page.request.get(manifestHref)).json();
  assert.equal(manifest.start_url, '/');
  assert.equal(manifest.display, 'standalone');
  const sizes = [];
  for (const icon of manifest.icons) {
    const n = await page.evaluate(async (src) => {
      const img = new Image();
      img.src = src;
      await img.decode();
      return img.naturalWidth + 'x' + img.naturalHeight;
    }, icon.src);
    assert.equal(n, icon.sizes);
    sizes.push(n);
  }
  assert.deepEqual(sizes, ['192x192', '512x512']);
  for (const [path, type] of [['/favicon.ico', 'image/x-icon'], ['/apple-touch-icon.png', 'image/png']]) {
    const r = await page.request.get(base + path);
    assert.equal(r.status(), 200, path);
    assert.equal(r.headers()['content-type'], type);
  }
  await page.waitForTimeout(300);
  assert.deepEqual(errors, []);
  await context.close();
});

test('the allow-list is shown by kind, with the full list on demand', async () => {
  const { context, page } = await openPage();
  await page.waitForSelector('#limits:has-text("per file")');
  const text = await page.$eval('#limits', (l) => l.innerText);
  assert.match(text, /Allowed: Photos, videos, audio, documents, archives, text\./);
  assert.equal(await page.isVisible('#limits dd:has-text(".jpg")'), false, 'extensions hidden at first');
  await page.click('#limits summary');
  assert.equal(await page.isVisible('#limits dd:has-text(".jpg")'), true);
  assert.match(await page.$eval('#limits dl', (d) => d.innerText), /videos\s+\.mp4/i);
  await page.screenshot({ path: join(shots, 'allowed-types.png'), fullPage: true });
  await context.close();
});

// Resumable uploads in the page: a 20 MiB file (three 8 MiB PATCHes) from disk, so that the same
// file (name, size, modification time) can be chosen again after a reload.
async function bigServerAndFile(tag) {
  const server = await startServer(['--max-size', '64M']);
  const path = join(root, tag + '.png');
  const data = Buffer.concat([PNG, Buffer.alloc((20 << 20) - PNG.length, 7)]);
  writeFileSync(path, data);
  return { server, path, sha: createHash('sha256').update(data).digest('hex') };
}

/** Logs the page's tus requests as "METHOD offset". */
function tusLog(page) {
  const log = [];
  page.on('request', (r) => {
    if (r.url().includes('/tus')) log.push(r.method() + ' ' + (r.headers()['upload-offset'] ?? ''));
  });
  return log;
}

test('a PATCH cut off midway: the page resumes from the server offset by itself and completes the file', async () => {
  const { server, path, sha } = await bigServerAndFile('cut');
  const { context, page } = await openReady(server);
  const log = tusLog(page);
  let patches = 0;
  await page.route('**/tus/*', (route, req) => {
    if (req.method() === 'PATCH' && ++patches === 2) return route.abort('connectionreset');
    return route.continue();
  });
  await page.setInputFiles('#files', path);
  await page.waitForFunction(() => document.querySelectorAll('#queue .state.done').length === 1, null, { timeout: 30000 });
  // After the cut: the offset asked for again, and the PATCH resumed from 8 MiB, not from 0.
  const after = log.slice(log.indexOf('PATCH 8388608') + 1);
  assert.ok(after.includes('HEAD '), log.join(', '));
  assert.ok(after.includes('PATCH 8388608'), log.join(', '));
  assert.equal(log.filter((l) => l.startsWith('POST')).length, 1, 'one upload, not a new one');
  assert.equal((await storedNamed(server, 'cut.png')).sha256, sha);
  await context.close();
});

test('a reload mid-upload: the page names the unfinished file, and choosing it again resumes it', async () => {
  const { server, path, sha } = await bigServerAndFile('reload');
  const { context, page } = await openReady(server);
  // The network fails after the first 8 MiB: the page keeps retrying.
  let patches = 0;
  await page.route('**/tus/*', (route, req) => {
    if (req.method() === 'PATCH' && ++patches >= 2) return route.abort('internetdisconnected');
    return route.continue();
  });
  await page.setInputFiles('#files', path);
  await page.waitForFunction(() => document.querySelector('#queue .meta')?.textContent.includes('retrying'), null, { timeout: 15000 });
  await page.unroute('**/tus/*');
  await page.reload();
  await page.waitForSelector('#unfinished:has-text("reload.png")');
  const log = tusLog(page);
  await page.setInputFiles('#files', path);
  await page.waitForFunction(() => document.querySelectorAll('#queue .state.done').length === 1, null, { timeout: 30000 });
  assert.equal(log[0], 'HEAD ', log.join(', '));
  assert.equal(log[1], 'PATCH 8388608', log.join(', '));
  assert.ok(!log.some((l) => l.startsWith('POST')), 'no new upload: ' + log.join(', '));
  assert.match(await page.textContent('#queue .meta'), /20 MiB/);
  assert.equal((await storedNamed(server, 'reload.png')).sha256, sha);
  assert.equal(await page.isVisible('#unfinished'), false, 'nothing left unfinished');
  await context.close();
});

test('cancel ends the upload on the server (termination)', async () => {
  const { server, path } = await bigServerAndFile('cancel');
  const { context, page } = await openReady(server);
  let patches = 0;
  let held;
  await page.route('**/tus/*', (route, req) => {
    if (req.method() === 'PATCH' && ++patches === 2) { held = route; return undefined; } // never answered
    return route.continue();
  });
  // The first PATCH may still be finishing on the server (423): the page asks again.
  const deleted = page.waitForResponse((r) => r.request().method() === 'DELETE' && r.status() !== 423);
  await page.setInputFiles('#files', path);
  await page.waitForFunction(() => document.querySelector('#queue progress').value >= 40, null, { timeout: 15000 });
  await page.click('#queue button:has-text("Cancel")');
  const res = await deleted;
  assert.equal(res.status(), 204);
  const head = await fetch(res.url(), { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
  assert.equal(head.status, 404);
  assert.match(await page.textContent('#queue .state'), /Cancelled/);
  assert.equal(await storedNamed(server, 'cancel.png'), undefined);
  if (held) await held.abort().catch(() => {});
  await context.close();
});

test('offline for a few seconds mid-upload (a phone that slept): the page finishes without user action', async () => {
  const { server, path, sha } = await bigServerAndFile('offline');
  const { context, page } = await openReady(server);
  const log = tusLog(page);
  let patches = 0;
  // The network goes away as the second PATCH starts, and comes back 3 s later.
  await page.route('**/tus/*', async (route, req) => {
    if (req.method() === 'PATCH' && ++patches === 2) {
      await context.setOffline(true);
      setTimeout(() => context.setOffline(false), 3000);
      return route.abort('internetdisconnected');
    }
    return route.continue();
  });
  await page.setInputFiles('#files', path);
  await page.waitForFunction(() => document.querySelector('#queue .meta')?.textContent.includes('retrying'), null, { timeout: 15000 });
  await page.waitForFunction(() => document.querySelectorAll('#queue .state.done').length === 1, null, { timeout: 60000 });
  assert.equal(log.filter((l) => l.startsWith('POST')).length, 1, log.join(', '));
  assert.equal((await storedNamed(server, 'offline.png')).sha256, sha);
  await context.close();
});

/** A drop-box server as shipped (its own dir) and the admin password its first start printed. */
async function dropBox(anonymous = 'dropbox') {
  const lines = [];
  const dir = join(root, 'dropbox-' + children.length);
  const server = await startPidrop(bin, dir, ['--max-size', '1M', '--anonymous', anonymous], children, (l) => lines.push(l));
  for (let i = 0; i < 100 && !lines.length; i++) await new Promise((r) => setTimeout(r, 50));
  const m = (lines[0] || '').match(/created the account admin with password (\S+)/);
  assert.ok(m, 'no first-admin line: ' + lines.join(' | '));
  return { server, password: m[1] };
}

test('drop box: a guest sees and deletes only its own uploads, logs in for everything, logs out', async () => {
  const { server, password } = await dropBox();
  const context = await browser.newContext();
  const page = await context.newPage();
  const challenged = [];
  page.on('response', (r) => { if (r.headers()['www-authenticate']) challenged.push(r.url()); });
  await page.goto(server + '/');
  await page.waitForSelector('#recent-title:text-is("Your uploads")');
  await page.waitForSelector('#login-link');
  await page.setInputFiles('#files', [
    { name: 'gone.txt', mimeType: 'text/plain', buffer: Buffer.from('delete me\n') },
    { name: 'kept.txt', mimeType: 'text/plain', buffer: Buffer.from('keep me\n') },
  ]);
  await page.waitForFunction(() => document.querySelectorAll('#queue .state.done').length === 2);
  // A guest's own uploads are names, not links (it may not download), each with Delete.
  await page.waitForSelector('#recent span.name:text-is("gone.txt")');
  assert.equal(await page.locator('#recent a.name').count(), 0);
  await page.click('#recent li:has-text("gone.txt") button:text-is("Delete")');
  await page.waitForSelector('#recent span.name:text-is("gone.txt")', { state: 'detached' });
  const auth = { Authorization: 'Basic ' + Buffer.from('admin:' + password).toString('base64') };
  const names = async () => (await (await fetch(server + '/files', { headers: auth })).json()).files.map((f) => f.original_name);
  assert.deepEqual(await names(), ['kept.txt']);

  // The login form, then everything is listed, as links; then logout ends it.
  await Promise.all([page.waitForNavigation(), page.click('#login-link')]);
  await page.fill('input[name=name]', 'admin');
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await page.waitForSelector('#account .who:text-is("admin (admin)")');
  await page.waitForSelector('#recent-title:text-is("Recent uploads")');
  await page.waitForSelector('#recent a.name:text-is("kept.txt")');
  const cookie = (await context.cookies()).find((c) => c.name === 'pidrop_session');
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', JSON.stringify(cookie));
  await page.screenshot({ path: join(shots, 'logged-in.png'), fullPage: true });
  await Promise.all([page.waitForNavigation(), page.click('#account button:text-is("Log out")')]);
  await page.waitForSelector('#login-link');
  await page.waitForSelector('#recent-title:text-is("Your uploads")');
  const after = await fetch(server + '/files', { headers: { Cookie: 'pidrop_session=' + cookie.value } });
  assert.equal(after.status, 401, 'the session must end on the server');
  assert.deepEqual(challenged, [], 'the page must never trigger the browser password dialog');
  await context.close();
});

test('logging in works without JavaScript, and a wrong password shows the form again', async () => {
  const { server, password } = await dropBox();
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(server + '/');
  await Promise.all([page.waitForNavigation(), page.click('#login-link')]);
  await page.fill('input[name=name]', 'admin');
  await page.fill('input[name=password]', 'wrong');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.match(await page.textContent('.err'), /needs an account|log in/i);
  await page.fill('input[name=name]', 'admin');
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(new URL(page.url()).pathname, '/');
  const listing = await page.goto(server + '/files');
  assert.equal(listing.status(), 200);
  await context.close();
});

/** A page logged in as admin through the login form. */
async function loggedIn(server, password) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(server + '/login');
  await page.fill('input[name=name]', 'admin');
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await page.waitForSelector('#account .who');
  return { context, page };
}

test('share links: an upload link and an album link with QR codes, opened by guests without accounts', async () => {
  const { server, password } = await dropBox('none');
  const auth = { Authorization: 'Basic ' + Buffer.from('admin:' + password).toString('base64') };
  const put = await fetch(server + '/upload/first.png?album=Fest', { method: 'PUT', headers: auth, body: PNG });
  assert.equal(put.status, 201);
  const admin = await loggedIn(server, password);
  const p = admin.page;

  // The album's upload link, made in the page: its address and its QR code.
  await p.click('#share-title');
  await p.fill('#album-link input[name=album]', 'Fest');
  await p.selectOption('#album-link select[name=kind]', 'upload');
  await p.click('#album-link button[type=submit]');
  await p.waitForSelector('#share:not([hidden])');
  await p.waitForFunction(() => { const q = document.getElementById('share-qr'); return q.complete && q.naturalWidth > 0; });
  const uploadUrl = await p.inputValue('#share-url');
  assert.match(uploadUrl, /\/s\/[0-9a-f]{32}$/);
  await p.screenshot({ path: join(shots, 'share-link.png'), fullPage: true });

  // A guest (no account; this server gives guests nothing) uploads through it.
  const guest = await browser.newContext();
  const g = await guest.newPage();
  await g.goto(uploadUrl);
  await g.waitForSelector('#link-note:has-text("Fest")');
  await g.setInputFiles('#files', [{ name: 'guest.png', mimeType: 'image/png', buffer: PNG }]);
  await g.waitForFunction(() => document.querySelectorAll('#queue .state.done').length === 1);
  const album = await (await fetch(server + '/files?album=Fest', { headers: auth })).json();
  assert.deepEqual(album.files.map((f) => f.original_name).sort(), ['first.png', 'guest.png']);
  await guest.close();

  // The album's view link: a guest sees both photos, with thumbnails, and downloads them.
  await p.fill('#album-link input[name=album]', 'Fest');
  await p.selectOption('#album-link select[name=kind]', 'album');
  await p.click('#album-link button[type=submit]');
  await p.waitForFunction((before) => document.getElementById('share-url').value !== before, uploadUrl);
  const viewUrl = await p.inputValue('#share-url');
  const viewer = await browser.newContext();
  const v = await viewer.newPage();
  await v.goto(viewUrl);
  await v.waitForSelector('#recent-title:text-is("Album: Fest")');
  await v.waitForSelector('#recent a.name:text-is("guest.png")');
  assert.equal(await v.isVisible('#drop'), false);
  const href = await v.getAttribute('#recent a.name:text-is("first.png")', 'href');
  assert.equal(await v.evaluate((h) => fetch(h).then((r) => r.status), href), 200);
  await v.waitForFunction(() => [...document.querySelectorAll('#recent img.thumb')].some((i) => i.complete && i.naturalWidth > 0));
  await viewer.close();

  // A file's own link, from its Share button.
  await p.reload();
  await p.click('#recent li:has-text("first.png") button:text-is("Share")');
  await p.waitForSelector('#share-what:text-is("Download link")');
  const fileUrl = await p.inputValue('#share-url');
  const got = await fetch(fileUrl);
  assert.equal(got.status, 200);
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), PNG);
  await admin.context.close();
});

test('under --base-path the page uploads, lists and logs in at its own addresses', async () => {
  const lines = [];
  const dir = join(root, 'based-' + children.length);
  const server = await startPidrop(bin, dir, ['--max-size', '1M', '--anonymous', 'dropbox', '--base-path', '/drop'], children, (l) => lines.push(l));
  for (let i = 0; i < 100 && !lines.length; i++) await new Promise((r) => setTimeout(r, 50));
  const password = (lines[0] || '').match(/password (\S+)/)[1];
  const context = await browser.newContext();
  const page = await context.newPage();
  const outside = [];
  page.on('request', (r) => { const u = new URL(r.url()); if (!u.pathname.startsWith('/drop/')) outside.push(u.pathname); });
  await page.goto(server + '/drop/');
  await page.waitForSelector('#limits:has-text("per file")');
  await page.setInputFiles('#files', [{ name: 'based.txt', mimeType: 'text/plain', buffer: Buffer.from('under a path\n') }]);
  await page.waitForFunction(() => document.querySelectorAll('#queue .state.done').length === 1);
  await page.waitForSelector('#recent span.name:text-is("based.txt")');
  assert.equal(await page.getAttribute('#login-link', 'href'), '/drop/login');
  await Promise.all([page.waitForNavigation(), page.click('#login-link')]);
  await page.fill('input[name=name]', 'admin');
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(new URL(page.url()).pathname, '/drop/');
  await page.waitForSelector('#recent a.name:text-is("based.txt")');
  assert.match(await page.getAttribute('#recent a.name', 'href'), /^\/drop\/files\//);
  const cookie = (await context.cookies()).find((c) => c.name === 'pidrop_session');
  assert.equal(cookie.path, '/drop/');
  assert.deepEqual(outside, [], 'every request stays under /drop/');
  await context.close();
});

test('with --s3-direct the page sends files straight to the bucket; pidrop lists the good one and removes the bad one', async (t) => {
  const s3 = process.env.PIDROP_TEST_S3_ENDPOINT;
  if (!s3) {
    // CI starts Garage (scripts/garage.sh, which also sets the bucket's CORS rule) and requires it.
    assert.ok(!process.env.PIDROP_TEST_S3_REQUIRED, 'PIDROP_TEST_S3_REQUIRED but no S3 endpoint');
    t.skip('no S3 server (scripts/garage.sh start DIR, then source DIR/env)');
    return;
  }
  process.env.PIDROP_S3_ACCESS_KEY_ID = process.env.PIDROP_TEST_S3_ACCESS_KEY;
  process.env.PIDROP_S3_SECRET_ACCESS_KEY = process.env.PIDROP_TEST_S3_SECRET_KEY;
  const server = await startServer(['--store', 's3', '--s3-endpoint', s3, '--s3-bucket', process.env.PIDROP_TEST_S3_BUCKET,
    '--s3-region', process.env.PIDROP_TEST_S3_REGION, '--s3-prefix', `browser-direct-${process.pid}/`, '--s3-direct', 'on']);
  const { context, page } = await openReady(server);
  const toBucket = [];
  page.on('request', (r) => { if (r.url().startsWith(s3)) toBucket.push(r.method()); });
  const tusCalls = [];
  page.on('request', (r) => { if (r.url().includes('/tus')) tusCalls.push(r.url()); });
  const fake = Buffer.concat([Buffer.from('MZ\x90\x00', 'latin1'), Buffer.alloc(5000, 7)]);
  await page.setInputFiles('#files', [
    { name: 'direct.png', mimeType: 'image/png', buffer: PNG },
    { name: 'fake.png', mimeType: 'image/png', buffer: fake },
  ]);
  await page.waitForFunction(() => document.querySelectorAll('#queue .state.done, #queue .state.error').length === 2);
  const rows = await page.$$eval('#queue li', (lis) => lis.map((li) => [li.querySelector('.name').textContent,
    li.querySelector('.state').className, li.querySelector('.state').textContent]));
  const good = rows.find((r) => r[0] === 'direct.png');
  const bad = rows.find((r) => r[0] === 'fake.png');
  assert.match(good[1], /done/, JSON.stringify(rows));
  assert.match(bad[1], /error/, JSON.stringify(rows));
  assert.match(bad[2], /named \.png but its content/);
  assert.deepEqual(toBucket, ['POST', 'POST'], 'both files went to the bucket');
  assert.deepEqual(tusCalls, [], 'nothing went through tus');
  const listed = await (await fetch(server + '/files')).json();
  assert.deepEqual(listed.files.map((f) => f.original_name), ['direct.png']);
  const back = Buffer.from(await (await fetch(server + listed.files[0].url)).arrayBuffer());
  assert.ok(back.equals(PNG), 'the stored file is the one sent');
  // Cleaned up through pidrop (the object goes with it).
  assert.equal((await fetch(server + listed.files[0].url, { method: 'DELETE' })).status, 204);
  await context.close();
});
