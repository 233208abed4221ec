import { REFRESH_INTERVAL_MS } from './web-script.js';

/*
 * The page's live parts, served as /assets/live.js after app.js (whose helpers it uses through
 * window.P2P): a standing search whose matches arrive as server-sent events, the downloads started with
 * "Get" and their progress (events too), this peer's own files with their hashes, and what it is serving.
 * Plain ES2020 without template literals; network-supplied text goes through textContent only.
 */
export const LIVE_JS = `'use strict';
(() => {
  const P = window.P2P;
  const { el, byId, humanSize, peerCell, getButton, getJson } = P;
  const REFRESH_INTERVAL_MS = ${REFRESH_INTERVAL_MS};
  /** Rows kept in the live watch table; the oldest go first. */
  const MAX_WATCH_ROWS = 500;
  let source;

  function stopWatch() {
    if (source) source.close();
    source = undefined;
    byId('watch-button').textContent = 'Watch';
  }

  function addMatch(match) {
    const file = match.file;
    const tr = el('tr');
    tr.append(
      el('td', match.event === 'added' ? 'new' : 'gone', match.event === 'added' ? 'event-added' : 'event-removed'),
      el('td', file.name, 'name'),
    );
    const size = el('td', humanSize(file.size), 'num');
    size.title = file.size + ' bytes';
    const sha = el('td', String(file.sha256).slice(0, 12) + '…', 'mono');
    sha.title = String(file.sha256);
    const actions = el('td');
    // Nothing to get from oneself (a copy this peer just downloaded shows up here too).
    if (match.event === 'added' && file.peerId !== P.ownPeerId()) actions.append(getButton(file));
    tr.append(size, peerCell(file.peerId, file.peerName), sha, actions);
    const body = byId('watch-results').tBodies[0];
    body.prepend(tr);
    while (body.rows.length > MAX_WATCH_ROWS) body.deleteRow(body.rows.length - 1);
    byId('watch-results').hidden = false;
  }

  function startWatch(text, removed) {
    stopWatch();
    byId('watch-results').tBodies[0].replaceChildren();
    const status = byId('watch-status');
    status.textContent = 'Registering the watch…';
    const query = new URLSearchParams({ q: text, removed: removed ? '1' : '0' });
    source = new EventSource('/api/watch?' + query.toString());
    byId('watch-button').textContent = 'Stop';
    source.addEventListener('accepted', (event) => {
      const data = JSON.parse(event.data);
      status.textContent = 'Watching "' + text + '" (accepted by superpeer ' + data.superpeerId + '). New matches appear below as peers share them.';
    });
    source.addEventListener('refused', (event) => {
      const data = JSON.parse(event.data);
      status.textContent = 'Superpeer ' + data.superpeerId + ' refused the watch: ' + data.message;
    });
    source.addEventListener('overflow', (event) => {
      const data = JSON.parse(event.data);
      status.textContent = data.dropped + ' matches were dropped over the rate limit.';
    });
    source.addEventListener('match', (event) => addMatch(JSON.parse(event.data)));
    source.addEventListener('error', () => {
      if (source && source.readyState === EventSource.CLOSED) {
        status.textContent = 'The watch stopped (this peer refused it or went away).';
        stopWatch();
      }
    });
  }

  const jobs = new Map();

  function renderDownloads() {
    const rows = [...jobs.values()].sort((a, b) => b.startedAtMs - a.startedAtMs).map((job) => {
      const tr = el('tr');
      tr.dataset.sha256 = String(job.sha256);
      const progressCell = el('td');
      const bar = document.createElement('progress');
      bar.max = Math.max(1, job.size);
      bar.value = job.receivedBytes;
      progressCell.append(bar, el('span', ' ' + humanSize(job.receivedBytes) + ' / ' + humanSize(job.size), 'bytes'));
      let stateText = 'downloading';
      if (job.state === 'done') stateText = 'verified ✓ (sha256 matches, from ' + job.servedBy.join(', ') + ')';
      if (job.state === 'failed') stateText = 'failed: ' + (job.error ? job.error.message : 'unknown');
      const state = el('td', stateText, 'state state-' + job.state);
      const sha = el('td', String(job.sha256).slice(0, 12) + '…', 'mono');
      sha.title = String(job.sha256);
      tr.append(el('td', job.name, 'name'), progressCell, state, sha);
      return tr;
    });
    byId('downloads').tBodies[0].replaceChildren(...rows);
    byId('downloads').hidden = rows.length === 0;
  }

  function followDownloads() {
    const events = new EventSource('/api/downloads/events');
    events.addEventListener('download', (event) => {
      const job = JSON.parse(event.data);
      jobs.set(job.id, job);
      while (jobs.size > 50) jobs.delete(jobs.keys().next().value);
      renderDownloads();
    });
  }

  async function refreshOwnFiles() {
    try {
      const filter = byId('own-filter').value.trim();
      const answer = await getJson('/api/own-files?' + new URLSearchParams({ q: filter, limit: '200' }).toString());
      const rows = answer.files.map((file) => {
        const tr = el('tr');
        const size = el('td', humanSize(file.size), 'num');
        size.title = file.size + ' bytes';
        tr.append(el('td', file.name, 'name'), size, el('td', file.sha256, 'hash'));
        return tr;
      });
      byId('own-files').tBodies[0].replaceChildren(...rows);
      byId('own-summary').textContent =
        answer.total + ' files shared' + (filter ? ', ' + answer.matching + ' match the filter' : '') +
        (answer.matching > rows.length ? ' (first ' + rows.length + ' shown)' : '');
    } catch (err) {
      byId('own-summary').textContent = 'Could not list the files: ' + (err && err.message ? err.message : String(err));
    }
  }

  async function refreshServing() {
    try {
      const answer = await getJson('/api/serving');
      const rows = answer.transfers.map((t) => {
        const tr = el('tr');
        tr.append(el('td', t.name, 'name'), el('td', t.client, 'mono'), el('td', (t.forMs / 1000).toFixed(1) + ' s', 'num'));
        return tr;
      });
      byId('serving').tBodies[0].replaceChildren(...rows);
      byId('serving-summary').textContent = rows.length === 0 ? 'Not serving any file right now.' : rows.length + ' transfers in progress';
    } catch {}
  }

  function tick() {
    void refreshOwnFiles();
    void refreshServing();
    setTimeout(tick, REFRESH_INTERVAL_MS);
  }

  byId('watch-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (source) {
      stopWatch();
      byId('watch-status').textContent = 'Stopped.';
      return;
    }
    const text = byId('watch-q').value.trim();
    if (text !== '') startWatch(text, byId('watch-removed').checked);
  });
  byId('own-filter').addEventListener('input', () => void refreshOwnFiles());
  followDownloads();
  tick();
})();
`;
