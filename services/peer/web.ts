import { fileURLToPath } from 'node:url';
import express from 'express';

/*
 * The peer's web page: one HTML document, two scripts (web/app.ts, web/live.ts, compiled for the browser by
 * web/tsconfig.json) and a stylesheet (web/app.css, copied beside them by the build), served from
 * dist/services/peer/web/.
 * The page reads the JSON API beside it (/api/status, /api/peers, /api/search) and the page's own routes
 * (web-api.ts: live watches, "get" downloads with progress, own files, transfers). The only request that
 * changes state, "get", carries the per-process token the HTML embeds (a page of another origin cannot
 * read it). File names, peer ids and URLs come from the network and are
 * attacker-controlled: the script writes them with textContent / setAttribute only, never as markup, and
 * the CSP allows scripts from this origin only, so a name that is HTML stays text.
 */

/** How often the page refreshes status and peers; the page reads it from its `p2p-refresh-ms` meta. */
export const REFRESH_INTERVAL_MS = 3000;

/** The compiled scripts and the stylesheet, beside this module in dist. */
const ASSETS_DIR = fileURLToPath(new URL('./web/', import.meta.url));

/** The files of ASSETS_DIR the page loads; nothing else there is served. */
const PAGE_ASSETS = ['app.js', 'live.js', 'app.css'] as const;

const ASSET_HEADERS = {
  'Cache-Control': 'no-cache',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

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

/** The token is base64url (no character HTML would interpret). */
const pageHtml = (csrfToken: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="p2p-csrf" content="${csrfToken}">
<meta name="p2p-refresh-ms" content="${REFRESH_INTERVAL_MS}">
<title>p2p peer</title>
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/app.css">
<script src="/assets/app.js" defer></script>
<script src="/assets/live.js" defer></script>
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

  <section aria-labelledby="watch-title">
    <h2 id="watch-title">Watch the network</h2>
    <form id="watch-form" autocomplete="off">
      <label for="watch-q" class="visually-hidden">Words or a SHA-256 to watch for</label>
      <input id="watch-q" name="q" type="search" maxlength="256" required placeholder="tell me when someone shares… (words or a SHA-256)">
      <label class="inline"><input id="watch-removed" type="checkbox"> also when files go away</label>
      <button id="watch-button" type="submit">Watch</button>
    </form>
    <p id="watch-status" class="summary" aria-live="polite"></p>
    <table id="watch-results" hidden>
      <thead><tr><th>Change</th><th>Name</th><th class="num">Size</th><th>Peer</th><th>SHA-256</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
  </section>

  <section aria-labelledby="downloads-title">
    <h2 id="downloads-title">Downloads into this peer’s share</h2>
    <p class="summary">“Get” saves a copy in <span class="mono">downloads/</span> of the share, fetched from every peer that has it and checked against its SHA-256 before it takes its name.</p>
    <p id="downloads-note" class="note note-error" hidden></p>
    <table id="downloads" hidden>
      <thead><tr><th>File</th><th>Progress</th><th>State</th><th>SHA-256</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>

  <section aria-labelledby="own-title">
    <h2 id="own-title">This peer’s files</h2>
    <input id="own-filter" type="search" maxlength="256" placeholder="filter by name" aria-label="Filter this peer’s files by name">
    <p id="own-summary" class="summary"></p>
    <table id="own-files">
      <thead><tr><th>Name</th><th class="num">Size</th><th>SHA-256</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>

  <section aria-labelledby="serving-title">
    <h2 id="serving-title">Serving now</h2>
    <p id="serving-summary" class="summary"></p>
    <table id="serving">
      <thead><tr><th>File</th><th>To</th><th class="num">For</th></tr></thead>
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

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="9" cy="16" r="6" fill="#2457c5"/><circle cx="23" cy="9" r="5" fill="#1f7a3a"/><circle cx="23" cy="23" r="5" fill="#1f7a3a"/><path d="M9 16L23 9M9 16l14 7" stroke="#5d6677" stroke-width="2"/></svg>`;

/**
 * `GET /` (the page, with this process's CSRF token) and `GET /assets/{app.js,live.js,app.css,icon.svg}`, for mounting at `/` beside the JSON API.
 */
export function createWebRouter(options: { csrfToken: string }): express.Router {
  const html = pageHtml(options.csrfToken);
  const router = express.Router({ caseSensitive: true, strict: true });
  const send = (type: string, body: string, extraHeaders: Record<string, string> = {}) =>
    ((_req, res) => {
      res.set({ 'Content-Type': type, ...ASSET_HEADERS, ...extraHeaders }).send(body);
    }) satisfies express.RequestHandler;

  router.get(
    '/',
    send('text/html; charset=utf-8', html, {
      'Content-Security-Policy': CONTENT_SECURITY_POLICY,
      'X-Frame-Options': 'DENY',
    }),
  );
  router.get('/assets/icon.svg', send('image/svg+xml', ICON_SVG));
  for (const asset of PAGE_ASSETS) {
    router.get(`/assets/${asset}`, (_req, res, next) => {
      res.sendFile(asset, { root: ASSETS_DIR, headers: ASSET_HEADERS, dotfiles: 'deny' }, (err) => {
        if (err) next(err);
      });
    });
  }
  return router;
}
