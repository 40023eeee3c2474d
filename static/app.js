// pidrop upload page: drop zone, a queue with per-file progress (XMLHttpRequest, since fetch has
// no upload progress), 3 uploads at a time, and the recent-uploads list. Every string that comes
// from the server or a file name is set with textContent, never innerHTML.
'use strict';

(function () {
  const PARALLEL = 3;
  const $ = (id) => document.getElementById(id);
  const drop = $('drop'), input = $('files'), queueEl = $('queue'), live = $('live');
  let config = null;
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

  function loadConfig() {
    return fetch('/config', { headers: { Accept: 'application/json' } })
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

  function cancelItem(item) {
    if (item.done) return;
    if (item.xhr) item.xhr.abort();
    const i = pending.indexOf(item);
    if (i >= 0) pending.splice(i, 1);
    finish(item, false, 'Cancelled');
    if (item.xhr) { active--; pump(); }
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

  function send(item) {
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    const started = Date.now();
    // The file itself is the body of a PUT: the server moves a raw body from the socket to the
    // disk without copying it through user space, which a multipart body cannot have.
    xhr.open('PUT', '/upload/' + encodeURIComponent(item.file.name));
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      item.loaded = e.loaded;
      item.bar.value = Math.floor((e.loaded / e.total) * 100);
      const secs = (Date.now() - started) / 1000;
      const speed = secs > 0 ? e.loaded / secs : 0;
      const left = speed > 0 ? (e.total - e.loaded) / speed : Infinity;
      item.meta.textContent = size(item.file.size) + ' · ' + size(speed) + '/s · ' + duration(left) + ' left';
      updateTotal();
    };
    xhr.onload = () => {
      active--;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
      if (xhr.status === 201 && body && body.files && body.files.length) {
        finish(item, true, '', body.files[0].url);
        refreshRecent();
      } else {
        finish(item, false, serverMessage(body, xhr.status));
      }
      pump();
    };
    xhr.onerror = () => {
      active--;
      finish(item, false, 'The connection to the server was lost');
      pump();
    };
    xhr.send(item.file);
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

  function refreshRecent() {
    fetch('/files?limit=30', { headers: { Accept: 'application/json' } })
      .then((r) => r.json())
      .then((data) => renderRecent(data.files || []))
      .catch(() => {});
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
      if (f.thumbnail_url) {
        thumb = el('img', 'thumb');
        thumb.alt = '';
        thumb.loading = 'lazy';
        // 503 while the server makes another thumbnail: try again a few times, then the badge.
        let tries = 0;
        thumb.onerror = () => {
          if (++tries > 4) { thumb.replaceWith(badge); return; }
          setTimeout(() => { thumb.src = f.thumbnail_url + '?try=' + tries; }, 800 * tries);
        };
        thumb.src = f.thumbnail_url;
      }
      const a = el('a', 'name', f.original_name);
      a.href = f.url;
      const del = el('button', 'small', 'Delete');
      del.type = 'button';
      del.setAttribute('aria-label', 'Delete ' + f.original_name);
      del.addEventListener('click', () => {
        fetch(f.url, { method: 'DELETE' }).then(refreshRecent);
      });
      const when = new Date(f.uploaded_at).toLocaleString();
      li.append(thumb, a, del, el('span', 'meta', size(f.size) + ' · ' + when));
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

  loadConfig().then(refreshRecent);
})();
