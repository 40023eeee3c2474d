// pidrop upload page: drop zone, a queue with per-file progress (XMLHttpRequest, since fetch has
// no upload progress), 3 uploads at a time sent with tus (resumable: `send` below) — or, when
// the server offers it (`direct_upload`), straight to its S3 bucket (`sendDirect`) — and the
// recent-uploads list. Every string that comes
// from the server or a file name is set with textContent, never innerHTML.
'use strict';

(function () {
  const PARALLEL = 3;
  const $ = (id) => document.getElementById(id);
  const drop = $('drop'), input = $('files'), queueEl = $('queue'), live = $('live');
  let config = null;
  // Where pidrop is mounted (`--base-path`, behind a proxy): this script's own address says.
  const BASE = new URL(document.currentScript.src).pathname.replace(/\/static\/app\.js$/, '');
  // Opened through a share link (<base>/s/<token>): every request carries its token.
  const LINK = location.pathname.startsWith(BASE + '/s/') ? location.pathname.slice(BASE.length + 3) : null;
  const LINKED = LINK ? { 'X-Pidrop-Link': LINK } : {};
  const withLink = (url) => (LINK ? url + (url.includes('?') ? '&' : '?') + 'link=' + encodeURIComponent(LINK) : url);
  function api(url, options = {}) {
    return fetch(url, Object.assign({}, options, { headers: Object.assign({ Accept: 'application/json' }, LINKED, options.headers || {}) }));
  }
  // Who the page talks as (`GET /session`): what to show, and what would only be refused.
  let session = { user: null, may: { upload: true, list: true, download: true, delete: true } };
  const pending = [];
  let active = 0;
  const all = [];

  document.documentElement.classList.add('js');

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function size(n) {
    const u = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (Number.isInteger(n) ? n : n.toFixed(1)) + ' ' + u[i];
  }

  function duration(s) {
    if (!isFinite(s)) return '';
    if (s < 60) return Math.ceil(s) + ' s';
    return Math.floor(s / 60) + ' min ' + Math.ceil(s % 60) + ' s';
  }

  function announce(text) { live.textContent = text; }

  // The account bar: "Log in", or the name with a logout button (a plain form post: it works
  // the same without this script).
  function loadSession() {
    return api(BASE + '/session')
      .then((r) => r.json())
      .then((s) => {
        if (s.error) { showLinkGone(s.error.message); return; }
        session = s;
        showAccount();
        showLink();
      })
      .catch(() => {});
  }

  // What a share link opened: an album to look at, or an album to upload into.
  function showLink() {
    const link = session.link;
    $('share-tools').hidden = !session.may.share;
    if (!link) return;
    $('account').hidden = true;
    if (link.kind === 'album') {
      $('form').hidden = true;
    } else {
      $('link-note').hidden = false;
      $('link-note').textContent = 'Your files go into the album “' + link.target + '”.';
    }
  }

  function showLinkGone(message) {
    $('form').hidden = true;
    $('account').hidden = true;
    $('recent-title').textContent = message;
    $('recent').replaceChildren();
  }

  // A link made here: its address to copy and its QR code (drawn by the server, as SVG).
  function showShared(made) {
    const panel = $('share');
    panel.hidden = false;
    $('share-url').value = made.full_url;
    $('share-what').textContent = made.kind === 'file' ? 'Download link' : made.kind === 'album' ? 'Album link: ' + made.target : 'Upload link into ' + made.target;
    $('share-expiry').textContent = 'Valid until ' + new Date(made.expires_at).toLocaleString() + '.';
    $('share-qr').src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(made.qr_svg);
    panel.scrollIntoView({ block: 'nearest' });
  }

  function makeLink(fields) {
    return api(BASE + '/links', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields) })
      .then((r) => r.json().then((body) => { if (!r.ok) throw new Error(serverMessage(body, r.status)); return body; }))
      .then(showShared)
      .catch((e) => { $('share-error').textContent = e.message; });
  }

  function showAccount() {
    const bar = $('account');
    if (!session.user) {
      const a = el('a', '', 'Log in');
      a.id = 'login-link';
      a.href = BASE + '/login';
      bar.replaceChildren(a);
      return;
    }
    const form = el('form');
    form.method = 'post';
    form.action = BASE + '/logout';
    const out = el('button', 'small', 'Log out');
    out.type = 'submit';
    form.append(out);
    bar.replaceChildren(el('span', 'who', session.user + ' (' + session.role + ')'), form);
  }

  // What this browser uploaded, kept by file URL with its delete token (shown once by the
  // server): a guest of the drop box sees and deletes these, and nothing else.
  const MINE = 'pidrop-mine:';
  function remember(url, token, file) {
    const record = { token, original_name: file.name, size: file.size, uploaded_at: new Date().toISOString() };
    localStorage.setItem(MINE + url, JSON.stringify(record));
  }
  function mine(url) {
    try { return JSON.parse(localStorage.getItem(MINE + url)); } catch (_) { return null; }
  }
  function myUploads() {
    const out = [];
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      if (!k || !k.startsWith(MINE)) continue;
      const r = mine(k.slice(MINE.length));
      if (r) out.push(Object.assign({ url: k.slice(MINE.length), name: k.slice(MINE.length).split('/').pop() }, r));
    }
    return out.sort((a, b) => (a.uploaded_at < b.uploaded_at ? 1 : -1));
  }

  function loadConfig() {
    return api(BASE + '/config')
      .then((r) => r.json())
      .then((c) => {
        config = c;
        showLimits(c);
      })
      .catch(() => { $('limits').textContent = ''; });
  }

  // "Photos, videos, audio, …" with the full list of extensions on demand, not a wall of 53.
  function showLimits(c) {
    const limits = $('limits');
    limits.replaceChildren('Up to ' + size(c.max_size) + ' per file. ');
    if (!c.kinds) { limits.append('Any type of file.'); return; }
    const names = c.kinds.map((k) => k.kind);
    const sentence = names.join(', ');
    limits.append('Allowed: ' + sentence.charAt(0).toUpperCase() + sentence.slice(1) + '. ');
    const details = el('details', 'types');
    details.append(el('summary', '', 'All allowed types'));
    const list = el('dl');
    for (const k of c.kinds) {
      list.append(el('dt', '', k.kind), el('dd', '', k.extensions.map((e) => '.' + e).join(' ')));
    }
    details.append(list);
    limits.append(details);
  }

  function extension(name) {
    const i = name.lastIndexOf('.');
    return i > 0 ? name.slice(i + 1).toLowerCase() : '';
  }

  // Checks with the server's own limits; the server checks again.
  function precheck(file) {
    if (!config) return null;
    if (file.size > config.max_size) return 'The file is larger than the limit of ' + size(config.max_size);
    if (config.allow && !config.allow.includes(extension(file.name))) {
      const e = extension(file.name);
      return e ? 'Files of type .' + e + ' are not allowed here' : 'Files without an extension are not allowed here';
    }
    return null;
  }

  function addFiles(files) {
    $('queue-section').hidden = false;
    for (const file of files) {
      const item = { file, loaded: 0, done: false, xhr: null };
      const li = el('li');
      const thumb = el('img', 'thumb');
      thumb.alt = '';
      if (file.type.startsWith('image/')) {
        thumb.src = URL.createObjectURL(file);
        thumb.onload = () => URL.revokeObjectURL(thumb.src);
      }
      const name = el('span', 'name', file.name);
      const cancel = el('button', 'small', 'Cancel');
      cancel.type = 'button';
      cancel.setAttribute('aria-label', 'Cancel ' + file.name);
      const meta = el('span', 'meta', size(file.size) + ' · waiting');
      const state = el('span', 'state');
      const bar = el('progress');
      bar.max = 100; bar.value = 0;
      bar.setAttribute('aria-label', 'Progress of ' + file.name);
      li.append(thumb, name, cancel, meta, state, bar);
      queueEl.append(li);
      Object.assign(item, { li, meta, state, bar, cancel });
      cancel.addEventListener('click', () => cancelItem(item));
      all.push(item);
      const refusal = precheck(file);
      if (refusal) { finish(item, false, refusal); continue; }
      pending.push(item);
    }
    pump();
    updateTotal();
  }

  // Cancel ends the upload on the server too (tus termination): its bytes are removed.
  function cancelItem(item) {
    if (item.done) return;
    const started = item.xhr !== null;
    finish(item, false, 'Cancelled');
    if (item.xhr) item.xhr.abort();
    const i = pending.indexOf(item);
    if (i >= 0) pending.splice(i, 1);
    localStorage.removeItem(keyOf(item.file));
    if (item.url) terminate(item.url, 0);
    if (started) { active--; pump(); }
  }

  // A PATCH the server is still finishing holds the upload (423): ask again shortly.
  function terminate(url, tries) {
    api(url, { method: 'DELETE', headers: TUS }).then((r) => {
      if (r.status === 423 && tries < 20) setTimeout(() => terminate(url, tries + 1), 500);
    }).catch(() => {});
  }

  function finish(item, ok, message, url) {
    item.done = true;
    item.ok = ok;
    item.cancel.disabled = true;
    item.cancel.hidden = true;
    item.state.textContent = '';
    item.state.className = 'state ' + (ok ? 'done' : 'error');
    if (ok) {
      item.bar.value = 100;
      const a = el('a', '', 'Done — open');
      a.href = url;
      item.state.append(a);
    } else {
      item.state.textContent = message;
    }
    item.meta.textContent = size(item.file.size);
    showUnfinished();
    announce(item.file.name + ': ' + (ok ? 'uploaded' : message));
    updateTotal();
  }

  function pump() {
    while (active < PARALLEL && pending.length) {
      const item = pending.shift();
      active++;
      send(item);
    }
  }

  // Every file goes with tus (/tus): created, then sent in CHUNK-sized PATCHes, each one
  // acknowledged only once the server has it on disk. A network error or a busy server is
  // retried with back-off (forever, while the page is open: a phone that slept comes back and
  // finishes); the upload's URL is kept in localStorage by name, size and modification time,
  // so after a reload choosing the same file again resumes it from the server's offset.
  const CHUNK = 8 << 20;
  const TUS = { 'Tus-Resumable': '1.0.0' };
  const keyOf = (f) => 'pidrop-tus:' + JSON.stringify([f.name, f.size, f.lastModified]);

  function b64(s) {
    let bin = '';
    for (const b of new TextEncoder().encode(s)) bin += String.fromCharCode(b);
    return btoa(bin);
  }

  // One request; resolves with the XHR whatever its status, rejects on a network error.
  function request(item, method, url, headers, body, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      item.xhr = xhr;
      xhr.open(method, url);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, String(v));
      if (onProgress) xhr.upload.onprogress = (e) => onProgress(e.loaded);
      xhr.onload = () => resolve(xhr);
      xhr.onerror = xhr.onabort = xhr.ontimeout = () => reject(new Error('network'));
      xhr.send(body === undefined ? null : body);
    });
  }
  // A request to pidrop: with the tus version and the share link's token.
  const call = (item, method, url, headers, body, onProgress) =>
    request(item, method, url, { ...TUS, ...LINKED, ...headers }, body, onProgress);

  // Where the server has this file's upload: the remembered one if it still exists, or a new one.
  async function uploadUrl(item) {
    const f = item.file;
    const known = localStorage.getItem(keyOf(f));
    if (known) {
      const h = await call(item, 'HEAD', known, {});
      if (h.status === 200) return [known, Number(h.getResponseHeader('Upload-Offset')), h];
      localStorage.removeItem(keyOf(f));
    }
    const meta = 'filename ' + b64(f.name) + (f.type ? ',filetype ' + b64(f.type) : '');
    const c = await call(item, 'POST', BASE + '/tus', { 'Upload-Length': f.size, 'Upload-Metadata': meta });
    if (c.status !== 201) throw c;
    const url = c.getResponseHeader('Location');
    localStorage.setItem(keyOf(f), url);
    return [url, 0, c];
  }

  // S3 takes at most 5 GiB in one POST: larger files go with tus.
  const DIRECT_MAX = 5 * 2 ** 30;

  async function send(item) {
    // Before /config has answered, tus (a file dropped at once).
    if (config && config.direct_upload && item.file.size <= DIRECT_MAX) return sendDirect(item);
    const f = item.file;
    try {
      let [url, offset, last] = await uploadUrl(item);
      item.url = url;
      if (item.resumedFrom === undefined) item.resumedFrom = offset;
      while (offset < f.size) {
        const at = offset;
        last = await call(item, 'PATCH', url, { 'Upload-Offset': at, 'Content-Type': 'application/offset+octet-stream' },
          f.slice(at, at + CHUNK), (n) => progress(item, at + n));
        if (last.status === 204) offset = Number(last.getResponseHeader('Upload-Offset'));
        else if (last.status === 409) offset = Number((await call(item, 'HEAD', url, {})).getResponseHeader('Upload-Offset'));
        else throw last;
        item.tries = 0;
      }
      localStorage.removeItem(keyOf(f));
      const fileUrl = last.getResponseHeader('Pidrop-File-Url');
      const deleteToken = last.getResponseHeader('Pidrop-Delete-Token');
      // The file's delete token, shown once: kept so this browser can delete its own uploads.
      if (fileUrl && deleteToken) remember(fileUrl, deleteToken, f);
      active--;
      finish(item, true, '', fileUrl || '#recent');
      refreshRecent();
      pump();
    } catch (e) {
      if (item.done) return;
      const busy = e instanceof Error || [423, 500, 502, 503, 504].includes(e.status);
      if (busy) { retryLater(item); return; }
      if ([404, 410, 413, 415].includes(e.status)) localStorage.removeItem(keyOf(f));
      active--;
      let body = null;
      try { body = JSON.parse(e.responseText); } catch (_) { body = null; }
      finish(item, false, serverMessage(body, e.status));
      pump();
    }
  }

  // Straight to the server's bucket: a presigned form from pidrop, the file POSTed to the
  // bucket (which must allow this page's origin: CORS), then pidrop checks it there and lists
  // it. Not resumable: a broken connection starts again with a new form.
  async function sendDirect(item) {
    const f = item.file;
    try {
      const p = await call(item, 'POST', withLink(BASE + '/upload/presign'), { 'Content-Type': 'application/json' },
        JSON.stringify({ name: f.name, size: f.size, type: f.type }));
      if (p.status !== 200) throw p;
      const signed = JSON.parse(p.responseText);
      const form = new FormData();
      for (const [k, v] of Object.entries(signed.fields)) form.append(k, v);
      form.append('file', f);
      // No headers of pidrop's: a plain form POST needs no CORS preflight.
      const sent = await request(item, 'POST', signed.url, {}, form, (n) => progress(item, Math.min(n, f.size)));
      if (sent.status < 200 || sent.status >= 300) throw sent;
      const c = await call(item, 'POST', withLink(signed.confirm), {});
      if (c.status !== 201) throw c;
      const stored = JSON.parse(c.responseText).files[0];
      remember(stored.url, stored.delete_token, f);
      active--;
      finish(item, true, '', stored.url);
      refreshRecent();
      pump();
    } catch (e) {
      if (item.done) return;
      if (e instanceof Error || [423, 500, 502, 503, 504].includes(e.status)) { retryLater(item); return; }
      active--;
      let body = null;
      try { body = JSON.parse(e.responseText); } catch (_) { body = null; }
      finish(item, false, serverMessage(body, e.status));
      pump();
    }
  }

  // Back-off: 1, 2, 4 … 30 s; at once when the browser says it is online or visible again.
  function retryLater(item) {
    const wait = Math.min(30000, 1000 * 2 ** Math.min(item.tries || 0, 5));
    item.tries = (item.tries || 0) + 1;
    item.meta.textContent = size(item.file.size) + ' · connection lost, retrying…';
    const again = () => {
      clearTimeout(timer);
      window.removeEventListener('online', again);
      document.removeEventListener('visibilitychange', visible);
      if (!item.done) send(item);
    };
    const visible = () => { if (document.visibilityState === 'visible') again(); };
    const timer = setTimeout(again, wait);
    window.addEventListener('online', again);
    document.addEventListener('visibilitychange', visible);
  }

  // The bar shows what the server has (a resumed upload starts where it stopped); the speed
  // counts only what this page sent.
  function progress(item, at) {
    item.loaded = at;
    item.bar.value = item.file.size ? Math.floor((at / item.file.size) * 100) : 100;
    if (!item.started) item.started = { time: Date.now(), at };
    const secs = (Date.now() - item.started.time) / 1000;
    const speed = secs > 0 ? (at - item.started.at) / secs : 0;
    const left = speed > 0 ? (item.file.size - at) / speed : Infinity;
    const resumed = item.resumedFrom ? ' · resumed at ' + size(item.resumedFrom) : '';
    item.meta.textContent = size(item.file.size) + ' · ' + size(speed) + '/s · ' + duration(left) + ' left' + resumed;
    updateTotal();
  }

  // After a reload: the uploads this browser left unfinished, to be chosen again.
  function showUnfinished() {
    const names = [];
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      if (!k || !k.startsWith('pidrop-tus:')) continue;
      try { const [name, bytes] = JSON.parse(k.slice('pidrop-tus:'.length)); names.push(name + ' (' + size(bytes) + ')'); } catch (_) { /* not ours */ }
    }
    const note = $('unfinished');
    note.hidden = !names.length;
    note.textContent = names.length ? 'Unfinished: ' + names.join(', ') + '. Choose the same files again to continue where they stopped.' : '';
  }

  function serverMessage(body, status) {
    if (body && body.errors && body.errors.length) return body.errors[0].message;
    if (body && body.error && body.error.message) return body.error.message;
    return 'The server answered ' + status;
  }

  function updateTotal() {
    const total = all.reduce((s, i) => s + i.file.size, 0);
    const loaded = all.reduce((s, i) => s + (i.done ? i.file.size : i.loaded), 0);
    const done = all.filter((i) => i.done).length;
    $('total').textContent = done + ' of ' + all.length + ' files · ' + size(loaded) + ' of ' + size(total);
  }

  // Everything recent for those who may list; otherwise this browser's own uploads.
  function refreshRecent() {
    const album = session.link && session.link.kind === 'album' ? session.link.target : null;
    const own = !session.may.list && !album;
    $('recent-title').textContent = album ? 'Album: ' + album : own ? 'Your uploads' : 'Recent uploads';
    const note = $('recent-note');
    note.hidden = !own;
    note.textContent = own ? 'Files uploaded from this browser. Log in to see everything.' : '';
    if (own) { renderRecent(myUploads()); return; }
    api(BASE + '/files?limit=30')
      .then((r) => r.json())
      .then((data) => renderRecent(data.files || []))
      .catch(() => {});
  }

  // A delete with the file's token when this browser has it (else the login decides); a
  // file that is gone is forgotten too.
  function remove(f) {
    const record = mine(f.url);
    const headers = record ? { 'X-Delete-Token': record.token } : {};
    api(f.url, { method: 'DELETE', headers })
      .then((r) => { if (r.ok || r.status === 404) localStorage.removeItem(MINE + f.url); })
      .then(refreshRecent);
  }

  function renderRecent(files) {
    const list = $('recent');
    list.replaceChildren();
    if (!files.length) { list.append(el('li', 'hint', 'Nothing uploaded yet.')); return; }
    for (const f of files) {
      const li = el('li');
      // No preview from the server (or it cannot make one): a badge with the file's extension.
      const badge = el('span', 'thumb badge', extension(f.original_name).slice(0, 4).toUpperCase() || 'FILE');
      badge.setAttribute('aria-hidden', 'true');
      let thumb = badge;
      if (f.thumbnail_url && session.may.download) {
        thumb = el('img', 'thumb');
        thumb.alt = '';
        thumb.loading = 'lazy';
        // 503 while the server makes another thumbnail: try again a few times, then the badge.
        let tries = 0;
        thumb.onerror = () => {
          if (++tries > 4) { thumb.replaceWith(badge); return; }
          setTimeout(() => { thumb.src = withLink(f.thumbnail_url + '?try=' + tries); }, 800 * tries);
        };
        thumb.src = withLink(f.thumbnail_url);
      }
      // A guest may not download: its own uploads are names, not links.
      const a = el(session.may.download ? 'a' : 'span', 'name', f.original_name);
      if (session.may.download) a.href = withLink(f.url);
      const canDelete = session.may.delete || mine(f.url) || ['member', 'uploader'].includes(session.role);
      const del = el('button', 'small', 'Delete');
      del.type = 'button';
      del.hidden = !canDelete;
      del.setAttribute('aria-label', 'Delete ' + f.original_name);
      del.addEventListener('click', () => remove(f));
      const when = new Date(f.uploaded_at).toLocaleString();
      const tools = el('span', 'tools');
      if (session.may.share) {
        const share = el('button', 'small', 'Share');
        share.type = 'button';
        share.setAttribute('aria-label', 'Share ' + f.original_name);
        share.addEventListener('click', () => makeLink({ kind: 'file', target: f.name }));
        tools.append(share);
      }
      tools.append(del);
      li.append(thumb, a, tools, el('span', 'meta', size(f.size) + ' · ' + when));
      list.append(li);
    }
  }

  // Files dropped anywhere on the page are uploaded; a near miss must never make the browser
  // leave the page to open the file.
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
  let dragDepth = 0;
  document.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    dragDepth++;
    document.body.classList.add('dragging');
    drop.classList.add('over');
  });
  document.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  document.addEventListener('dragleave', () => {
    if (--dragDepth > 0) return;
    dragDepth = 0;
    document.body.classList.remove('dragging');
    drop.classList.remove('over');
  });
  document.addEventListener('drop', (e) => {
    if (!e.dataTransfer) return;
    e.preventDefault();
    dragDepth = 0;
    document.body.classList.remove('dragging');
    drop.classList.remove('over');
    if (e.dataTransfer.files.length) addFiles(Array.from(e.dataTransfer.files));
  });
  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); }
  });
  input.addEventListener('change', () => {
    if (input.files.length) addFiles(Array.from(input.files));
    input.value = '';
  });
  $('form').addEventListener('submit', (e) => { e.preventDefault(); });
  $('album-link').addEventListener('submit', (e) => {
    e.preventDefault();
    $('share-error').textContent = '';
    const form = new FormData(e.target);
    const fields = { kind: form.get('kind'), target: form.get('album'), expires: form.get('expires') };
    if (form.get('max_files')) fields.max_files = form.get('max_files');
    makeLink(fields);
  });
  $('share-copy').addEventListener('click', () => {
    $('share-url').select();
    if (navigator.clipboard) navigator.clipboard.writeText($('share-url').value).catch(() => {});
  });

  showUnfinished();
  Promise.all([loadConfig(), loadSession()]).then(refreshRecent);
})();
