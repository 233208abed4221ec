/*
 * The page's live parts, served as /assets/live.js after app.js (whose helpers it uses through
 * window.P2P): a standing search whose matches arrive as server-sent events, the downloads started with
 * "Get" and their progress (events too), this peer's own files with their hashes, and what it is serving.
 * Network-supplied text goes through textContent only.
 */
(() => {
  const P = window.P2P;
  const { el, byId, tbody, humanSize, peerCell, getButton, getJson, errorText } = P;
  const REFRESH_INTERVAL_MS = P.refreshIntervalMs;
  /** Downloads kept in the table; the oldest go first. */
  const MAX_DOWNLOAD_ROWS = 50;
  /** Rows kept in the live watch table; the oldest go first. */
  const MAX_WATCH_ROWS = 500;
  let source: EventSource | undefined;

  function stopWatch(): void {
    if (source) source.close();
    source = undefined;
    byId('watch-button').textContent = 'Watch';
  }

  function addMatch(match: WatchMatch): void {
    const file = match.file;
    const tr = el('tr');
    tr.append(
      el(
        'td',
        match.event === 'added' ? 'new' : 'gone',
        match.event === 'added' ? 'event-added' : 'event-removed',
      ),
      el('td', file.name, 'name'),
    );
    const size = el('td', humanSize(file.size), 'num');
    size.title = `${file.size} bytes`;
    const sha = el('td', `${String(file.sha256).slice(0, 12)}…`, 'mono');
    sha.title = String(file.sha256);
    const actions = el('td');
    // Nothing to get from oneself (a copy this peer just downloaded shows up here too).
    if (match.event === 'added' && file.peerId !== P.ownPeerId()) actions.append(getButton(file));
    tr.append(size, peerCell(file.peerId, file.peerName), sha, actions);
    const body = tbody('watch-results');
    body.prepend(tr);
    while (body.rows.length > MAX_WATCH_ROWS) body.deleteRow(body.rows.length - 1);
    byId('watch-results').hidden = false;
  }

  function startWatch(text: string, removed: boolean): void {
    stopWatch();
    tbody('watch-results').replaceChildren();
    const status = byId('watch-status');
    status.textContent = 'Registering the watch…';
    const query = new URLSearchParams({ q: text, removed: removed ? '1' : '0' });
    const events = new EventSource(`/api/watch?${query.toString()}`);
    source = events;
    byId('watch-button').textContent = 'Stop';
    events.addEventListener('accepted', (event) => {
      const data = JSON.parse(event.data);
      status.textContent =
        'Watching "' +
        text +
        '" (accepted by superpeer ' +
        data.superpeerId +
        '). New matches appear below as peers share them.';
    });
    events.addEventListener('refused', (event) => {
      const data = JSON.parse(event.data);
      status.textContent = `Superpeer ${data.superpeerId} refused the watch: ${data.message}`;
    });
    events.addEventListener('overflow', (event) => {
      const data = JSON.parse(event.data);
      status.textContent = `${data.dropped} matches were dropped over the rate limit.`;
    });
    events.addEventListener('match', (event) => addMatch(JSON.parse(event.data)));
    events.addEventListener('error', () => {
      if (source === events && events.readyState === EventSource.CLOSED) {
        status.textContent = 'The watch stopped (this peer refused it or went away).';
        stopWatch();
      }
    });
  }

  const jobs = new Map<string, DownloadJob>();

  function renderDownloads(): void {
    const rows = [...jobs.values()]
      .sort((a, b) => b.startedAtMs - a.startedAtMs)
      .map((job) => {
        const tr = el('tr');
        tr.dataset.sha256 = String(job.sha256);
        const progressCell = el('td');
        const bar = document.createElement('progress');
        bar.max = Math.max(1, job.size);
        bar.value = job.receivedBytes;
        progressCell.append(
          bar,
          el('span', ` ${humanSize(job.receivedBytes)} / ${humanSize(job.size)}`, 'bytes'),
        );
        let stateText = 'downloading';
        if (job.state === 'done') stateText = `verified ✓ (sha256 matches, from ${job.servedBy.join(', ')})`;
        if (job.state === 'failed') stateText = `failed: ${job.error ? job.error.message : 'unknown'}`;
        const state = el('td', stateText, `state state-${job.state}`);
        const sha = el('td', `${String(job.sha256).slice(0, 12)}…`, 'mono');
        sha.title = String(job.sha256);
        tr.append(el('td', job.name, 'name'), progressCell, state, sha);
        return tr;
      });
    tbody('downloads').replaceChildren(...rows);
    byId('downloads').hidden = rows.length === 0;
  }

  function followDownloads(): void {
    const events = new EventSource('/api/downloads/events');
    events.addEventListener('download', (event) => {
      const job = JSON.parse(event.data) as DownloadJob;
      jobs.set(job.id, job);
      for (const id of jobs.keys()) {
        if (jobs.size <= MAX_DOWNLOAD_ROWS) break;
        jobs.delete(id);
      }
      renderDownloads();
    });
  }

  async function refreshOwnFiles(): Promise<void> {
    try {
      const filter = byId<HTMLInputElement>('own-filter').value.trim();
      const answer = await getJson<OwnFiles>(
        `/api/own-files?${new URLSearchParams({ q: filter, limit: '200' }).toString()}`,
      );
      const rows = answer.files.map((file) => {
        const tr = el('tr');
        const size = el('td', humanSize(file.size), 'num');
        size.title = `${file.size} bytes`;
        tr.append(el('td', file.name, 'name'), size, el('td', file.sha256, 'hash'));
        return tr;
      });
      tbody('own-files').replaceChildren(...rows);
      byId('own-summary').textContent =
        answer.total +
        ' files shared' +
        (filter ? `, ${answer.matching} match the filter` : '') +
        (answer.matching > rows.length ? ` (first ${rows.length} shown)` : '');
    } catch (err) {
      byId('own-summary').textContent = `Could not list the files: ${errorText(err)}`;
    }
  }

  async function refreshServing(): Promise<void> {
    try {
      const answer = await getJson<Serving>('/api/serving');
      const rows = answer.transfers.map((t) => {
        const tr = el('tr');
        tr.append(
          el('td', t.name, 'name'),
          el('td', t.client, 'mono'),
          el('td', `${(t.forMs / 1000).toFixed(1)} s`, 'num'),
        );
        return tr;
      });
      tbody('serving').replaceChildren(...rows);
      byId('serving-summary').textContent =
        rows.length === 0 ? 'Not serving any file right now.' : `${rows.length} transfers in progress`;
    } catch {}
  }

  function tick(): void {
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
    const text = byId<HTMLInputElement>('watch-q').value.trim();
    if (text !== '') startWatch(text, byId<HTMLInputElement>('watch-removed').checked);
  });
  byId('own-filter').addEventListener('input', () => void refreshOwnFiles());
  followDownloads();
  tick();
})();
