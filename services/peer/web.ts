import express from 'express';

/*
 * The peer's web page: one HTML document, one script, one stylesheet, kept here as strings so that the
 * compiled service needs no asset directory and no build step. The page only reads the JSON API beside it
 * (/api/status, /api/peers, /api/search). File names, peer ids and URLs come from the network and are
 * attacker-controlled: the script writes them with textContent / setAttribute only, never as markup, and
 * the CSP allows scripts from this origin only, so a name that is HTML stays text.
 */

/** Results asked for per search; the API caps it at MAX_SEARCH_LIMIT. */
const PAGE_SEARCH_LIMIT = 200;
/** How often status and peers are refreshed. */
const REFRESH_INTERVAL_MS = 3000;

const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>p2p peer</title>
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/app.css">
<script src="/assets/app.js" defer></script>
</head>
<body>
<header>
  <h1>p2p peer <span id="peer-name">…</span> <span id="peer-id" class="mono">…</span></h1>
  <span id="broker-badge" class="badge badge-unknown">loading</span>
</header>
<main>
  <section aria-labelledby="status-title">
    <h2 id="status-title">This peer</h2>
    <dl id="status" class="status">
      <div><dt>URL</dt><dd id="status-url" class="mono">…</dd></div>
      <div><dt>Broker</dt><dd id="status-broker">…</dd></div>
      <div><dt>Network view</dt><dd id="status-view">…</dd></div>
      <div><dt>Files shared</dt><dd id="status-files">…</dd></div>
      <div><dt>Share directory</dt><dd id="status-share" class="mono">…</dd></div>
    </dl>
    <p id="status-error" class="note note-error" hidden></p>
  </section>

  <section aria-labelledby="search-title">
    <h2 id="search-title">Search the network</h2>
    <form id="search-form" role="search" autocomplete="off">
      <label for="q" class="visually-hidden">Words or a SHA-256</label>
      <input id="q" name="q" type="search" maxlength="256" required placeholder="words of file names, or a SHA-256">
      <button id="search-button" type="submit">Search</button>
    </form>
    <p id="search-view-note" class="note note-warn" hidden></p>
    <p id="search-summary" class="summary" aria-live="polite"></p>
    <table id="results" hidden>
      <thead><tr><th>Name</th><th class="num">Size</th><th>Peer</th><th>SHA-256</th><th>Download</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>

  <section aria-labelledby="peers-title">
    <h2 id="peers-title">Peers in this peer’s view</h2>
    <p id="peers-summary" class="summary"></p>
    <table id="peers">
      <thead><tr><th>Peer</th><th>URL</th><th class="num">Files</th><th class="num">Size</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
<footer>
  Status and peers refresh every ${REFRESH_INTERVAL_MS / 1000} s ·
  <a href="/api/status">status JSON</a> · <a href="/api/peers">peers JSON</a> · <a href="/metrics">metrics</a>
</footer>
<noscript><p class="note note-error">This page needs JavaScript; the JSON API at /api/… works without it.</p></noscript>
</body>
</html>
`;

const APP_CSS = `:root {
  --fg: #1d2330; --muted: #5d6677; --line: #d9dee7; --bg: #f6f7fa; --card: #fff;
  --accent: #2457c5; --ok: #1f7a3a; --ok-bg: #e3f4e8; --bad: #a52a2a; --bad-bg: #fbe6e6;
  --warn: #7a5200; --warn-bg: #fff4d6;
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
header, main, footer { max-width: 1200px; margin: 0 auto; padding: 0 24px; }
header { display: flex; align-items: center; gap: 16px; padding-top: 20px; padding-bottom: 8px; }
h1 { font-size: 22px; margin: 0; font-weight: 600; }
h2 { font-size: 17px; margin: 0 0 12px; font-weight: 600; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 16px 0; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 13.5px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 13px; font-weight: 600; }
.badge-ok { background: var(--ok-bg); color: var(--ok); }
.badge-bad { background: var(--bad-bg); color: var(--bad); }
.badge-unknown { background: var(--line); color: var(--muted); }
.status { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 10px 24px; margin: 0; }
.status dt { color: var(--muted); font-size: 13px; }
.status dd { margin: 0; overflow-wrap: anywhere; }
form { display: flex; gap: 8px; margin-bottom: 10px; }
input[type=search] { flex: 1; font: inherit; padding: 7px 10px; border: 1px solid var(--line); border-radius: 6px; }
input[type=search]:focus { outline: 2px solid var(--accent); outline-offset: -1px; }
button { font: inherit; padding: 7px 18px; border: 0; border-radius: 6px; background: var(--accent); color: #fff; cursor: pointer; }
button:disabled { opacity: .6; cursor: progress; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 13px; color: var(--muted); font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfd; }
td.name { overflow-wrap: anywhere; }
.num { text-align: right; white-space: nowrap; }
a { color: var(--accent); }
.note { padding: 8px 12px; border-radius: 6px; margin: 8px 0; }
.note-warn { background: var(--warn-bg); color: var(--warn); }
.note-error { background: var(--bad-bg); color: var(--bad); }
.summary { color: var(--muted); margin: 6px 0; }
.self { color: var(--muted); font-size: 12px; margin-left: 6px; }
footer { color: var(--muted); font-size: 13px; padding-bottom: 24px; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

// Plain ES2020 for the browser; no template literals inside, so nothing here is interpolated by this module
// except the two constants at the top.
const APP_JS = `'use strict';
(() => {
  const SEARCH_LIMIT = ${PAGE_SEARCH_LIMIT};
  const REFRESH_INTERVAL_MS = ${REFRESH_INTERVAL_MS};
  const byId = (id) => document.getElementById(id);
  let ownPeerId = '';
  let searchSerial = 0;

  // Control, bidi and invisible format characters are shown escaped (names are remote input).
  const UNUSUAL = /[\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]|(?![\\u200c\\u200d])\\p{Cf}/gu;
  function visible(text) {
    return String(text).replace(UNUSUAL, (c) => '\\\\u{' + c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0') + '}');
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = visible(text);
    if (className) node.className = className;
    return node;
  }

  function humanSize(bytes) {
    if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '?';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    if (unit === 0) return value + ' B';
    return (value >= 100 ? value.toFixed(0) : value.toFixed(1)) + ' ' + units[unit];
  }

  // Only http(s) links: a javascript: or data: URL from the network must never become clickable.
  function safeHref(url) {
    try {
      const parsed = new URL(String(url));
      return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : undefined;
    } catch {
      return undefined;
    }
  }

  function link(url, text) {
    const href = safeHref(url);
    if (!href) return el('span', text);
    const a = el('a', text);
    a.setAttribute('href', href);
    a.setAttribute('rel', 'noopener noreferrer');
    return a;
  }

  // The name is the peer's own choice (not unique); the id, derived from its key, is what tells peers apart.
  function peerCell(peerId, name) {
    const td = el('td', undefined, 'mono');
    const label = el('span', name ? String(name) : String(peerId).slice(0, 12));
    label.title = String(peerId);
    td.append(label, el('span', ' ' + String(peerId).slice(0, 8), 'self'));
    if (peerId === ownPeerId) td.append(el('span', '(this peer)', 'self'));
    return td;
  }

  async function getJson(path) {
    const response = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    let body;
    try {
      body = await response.json();
    } catch {
      body = undefined;
    }
    if (!response.ok) {
      const message = body && body.error && body.error.message ? body.error.message : 'HTTP ' + response.status;
      throw new Error(message);
    }
    return body;
  }

  function renderStatus(status) {
    ownPeerId = String(status.peerId);
    byId('peer-id').textContent = ownPeerId;
    byId('peer-name').textContent = String(status.name);
    document.title = 'p2p peer ' + String(status.name);
    byId('status-url').replaceChildren(link(status.url, String(status.url)));
    const connected = status.brokerConnected === true;
    const badge = byId('broker-badge');
    badge.textContent = connected ? 'connected' : 'disconnected';
    badge.className = 'badge ' + (connected ? 'badge-ok' : 'badge-bad');
    byId('status-broker').textContent = connected ? 'connected to RabbitMQ' : 'not connected (reconnecting)';
    byId('status-view').textContent =
      status.viewPeers + ' peers, ' + status.viewFiles + ' files' + (status.viewStale ? ' (not yet loaded: may be stale)' : ' (current)');
    byId('status-files').textContent = String(status.files);
    byId('status-share').textContent = String(status.shareDir);
  }

  function renderPeers(answer) {
    const rows = answer.peers.map((peer) => {
      const tr = el('tr');
      const url = el('td', undefined, 'mono');
      url.append(link(peer.url, String(peer.url)));
      const size = el('td', humanSize(peer.totalBytes), 'num');
      size.title = peer.totalBytes + ' bytes';
      tr.append(peerCell(peer.peerId, peer.name), url, el('td', peer.fileCount, 'num'), size);
      return tr;
    });
    byId('peers').tBodies[0].replaceChildren(...rows);
    const files = answer.peers.reduce((sum, peer) => sum + peer.fileCount, 0);
    byId('peers-summary').textContent =
      answer.peers.length === 0
        ? 'No peers in the view yet.'
        : answer.peers.length + ' peers, ' + files + ' files' + (answer.stale ? ' — the view is not yet loaded and may be stale' : '');
  }

  async function refresh() {
    try {
      const [status, peers] = await Promise.all([getJson('/api/status'), getJson('/api/peers')]);
      renderStatus(status);
      renderPeers(peers);
      byId('status-error').hidden = true;
    } catch (err) {
      const note = byId('status-error');
      note.textContent = 'This peer did not answer: ' + (err && err.message ? err.message : String(err));
      note.hidden = false;
      const badge = byId('broker-badge');
      badge.textContent = 'unreachable';
      badge.className = 'badge badge-bad';
    } finally {
      setTimeout(refresh, REFRESH_INTERVAL_MS);
    }
  }

  function renderResults(answer) {
    const rows = answer.results.map((result) => {
      const tr = el('tr');
      const size = el('td', humanSize(result.size), 'num');
      size.title = result.size + ' bytes';
      const sha = el('td', String(result.sha256).slice(0, 12) + '…', 'mono');
      sha.title = String(result.sha256);
      const download = el('td');
      download.append(link(result.url, 'download'));
      tr.append(el('td', result.name, 'name'), size, peerCell(result.peerId, result.peerName), sha, download);
      return tr;
    });
    const table = byId('results');
    table.tBodies[0].replaceChildren(...rows);
    table.hidden = rows.length === 0;

    const note = byId('search-view-note');
    if (answer.source === 'network-view') {
      note.textContent =
        'No superpeer answered' +
        (answer.superpeerError ? ' (' + answer.superpeerError + ')' : '') +
        ': these results come from this peer’s own view of the network' +
        (answer.stale ? ' and may miss recent changes.' : '.');
      note.hidden = false;
    } else {
      note.hidden = true;
    }
    byId('search-summary').textContent =
      rows.length === 0
        ? 'No file matches.'
        : rows.length + (rows.length === 1 ? ' result' : ' results') +
          (answer.truncated ? ' (more matched; refine the words to see them)' : '') +
          (answer.source === 'superpeer' ? ', from a superpeer.' : '.');
  }

  async function search(text) {
    const serial = ++searchSerial;
    const button = byId('search-button');
    button.disabled = true;
    byId('search-summary').textContent = 'Searching…';
    try {
      const query = new URLSearchParams({ q: text, limit: String(SEARCH_LIMIT) });
      const answer = await getJson('/api/search?' + query.toString());
      if (serial === searchSerial) renderResults(answer);
    } catch (err) {
      if (serial !== searchSerial) return;
      byId('results').hidden = true;
      byId('search-view-note').hidden = true;
      byId('search-summary').textContent = 'Search failed: ' + (err && err.message ? err.message : String(err));
    } finally {
      if (serial === searchSerial) button.disabled = false;
    }
  }

  function start() {
    const input = byId('q');
    byId('search-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (text === '') return;
      history.replaceState(null, '', '?q=' + encodeURIComponent(text));
      void search(text);
    });
    const initial = new URLSearchParams(location.search).get('q');
    if (initial) {
      input.value = initial;
      void search(initial);
    }
    void refresh();
  }

  start();
})();
`;

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="9" cy="16" r="6" fill="#2457c5"/><circle cx="23" cy="9" r="5" fill="#1f7a3a"/><circle cx="23" cy="23" r="5" fill="#1f7a3a"/><path d="M9 16L23 9M9 16l14 7" stroke="#5d6677" stroke-width="2"/></svg>`;

/**
 * `GET /` (the page) and `GET /assets/{app.js,app.css,icon.svg}`, for mounting at `/` beside the JSON API.
 */
export function createWebRouter(): express.Router {
  const router = express.Router({ caseSensitive: true, strict: true });
  const send = (type: string, body: string, extraHeaders: Record<string, string> = {}) =>
    ((_req, res) => {
      res
        .set({
          'Content-Type': type,
          'Cache-Control': 'no-cache',
          'X-Content-Type-Options': 'nosniff',
          'Referrer-Policy': 'no-referrer',
          ...extraHeaders,
        })
        .send(body);
    }) satisfies express.RequestHandler;

  router.get(
    '/',
    send('text/html; charset=utf-8', PAGE_HTML, {
      'Content-Security-Policy': CONTENT_SECURITY_POLICY,
      'X-Frame-Options': 'DENY',
    }),
  );
  router.get('/assets/app.js', send('text/javascript; charset=utf-8', APP_JS));
  router.get('/assets/app.css', send('text/css; charset=utf-8', APP_CSS));
  router.get('/assets/icon.svg', send('image/svg+xml', ICON_SVG));
  return router;
}
