/*
 * The page's main script, served as /assets/app.js: status, peers, search and the "get" action. Names,
 * peer ids and URLs from the network are written with textContent / setAttribute only.
 */
(() => {
  /** Results asked for per search; the API caps it at MAX_SEARCH_LIMIT. */
  const SEARCH_LIMIT = 200;

  function byId<T extends HTMLElement = HTMLElement>(id: string): T {
    const node = document.getElementById(id);
    if (!node) throw new Error(`the page has no #${id}`);
    return node as T;
  }

  function meta(name: string): string {
    return document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') ?? '';
  }

  /** How often status and peers are refreshed: the page says (it also shows it to the reader). */
  const REFRESH_INTERVAL_MS = Number(meta('p2p-refresh-ms')) || 3000;
  /** The body of a table of the page. */
  function tbody(tableId: string): HTMLTableSectionElement {
    const body = byId<HTMLTableElement>(tableId).tBodies[0];
    if (!body) throw new Error(`table #${tableId} has no body`);
    return body;
  }

  let ownPeerId = '';
  let searchSerial = 0;

  // Control, bidi and invisible format characters are shown escaped (names are remote input).
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  const UNUSUAL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]|(?![\u200c\u200d])\p{Cf}/gu;
  function visible(text: string | number): string {
    return String(text).replace(
      UNUSUAL,
      (c) => `\\u{${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}}`,
    );
  }

  function el<K extends keyof HTMLElementTagNameMap>(
    tag: K,
    text?: string | number,
    className?: string,
  ): HTMLElementTagNameMap[K] {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = visible(text);
    if (className) node.className = className;
    return node;
  }

  function humanSize(bytes: number): string {
    if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '?';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    if (unit === 0) return `${value} B`;
    return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
  }

  // Only http(s) links: a javascript: or data: URL from the network must never become clickable.
  function safeHref(url: string): string | undefined {
    try {
      const parsed = new URL(String(url));
      return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : undefined;
    } catch {
      return undefined;
    }
  }

  function link(url: string, text: string): HTMLElement {
    const href = safeHref(url);
    if (!href) return el('span', text);
    const a = el('a', text);
    a.setAttribute('href', href);
    a.setAttribute('rel', 'noopener noreferrer');
    return a;
  }

  // The name is the peer's own choice (not unique); the id, derived from its key, is what tells peers apart.
  function peerCell(peerId: string, name: string | undefined): HTMLTableCellElement {
    const td = el('td', undefined, 'mono');
    const label = el('span', name ? String(name) : String(peerId).slice(0, 12));
    label.title = String(peerId);
    td.append(label, el('span', ` ${String(peerId).slice(0, 8)}`, 'self'));
    if (peerId === ownPeerId) td.append(el('span', '(this peer)', 'self'));
    return td;
  }

  /** What an API refusal says, else the HTTP status. */
  function refusal(body: unknown, status: number): string {
    const error = (body as { error?: { message?: unknown } } | undefined)?.error;
    return typeof error?.message === 'string' ? error.message : `HTTP ${status}`;
  }

  function errorText(err: unknown): string {
    return err instanceof Error ? err.message : String(err);
  }

  async function getJson<T>(path: string): Promise<T> {
    const response = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      body = undefined;
    }
    if (!response.ok) throw new Error(refusal(body, response.status));
    return body as T;
  }

  function renderStatus(status: PeerStatus): void {
    ownPeerId = String(status.peerId);
    byId('peer-id').textContent = ownPeerId;
    byId('peer-name').textContent = String(status.name);
    document.title = `p2p peer ${String(status.name)}`;
    byId('status-url').replaceChildren(link(status.url, String(status.url)));
    const connected = status.brokerConnected === true;
    const badge = byId('broker-badge');
    badge.textContent = connected ? 'connected' : 'disconnected';
    badge.className = `badge ${connected ? 'badge-ok' : 'badge-bad'}`;
    byId('status-broker').textContent = connected ? 'connected to RabbitMQ' : 'not connected (reconnecting)';
    byId('status-view').textContent =
      status.viewPeers +
      ' peers, ' +
      status.viewFiles +
      ' files' +
      (status.viewStale ? ' (not yet loaded: may be stale)' : ' (current)');
    byId('status-files').textContent = String(status.files);
    byId('status-share').textContent = String(status.shareDir);
  }

  function renderPeers(answer: PeerList): void {
    const rows = answer.peers.map((peer) => {
      const tr = el('tr');
      const url = el('td', undefined, 'mono');
      url.append(link(peer.url, String(peer.url)));
      const size = el('td', humanSize(peer.totalBytes), 'num');
      size.title = `${peer.totalBytes} bytes`;
      tr.append(peerCell(peer.peerId, peer.name), url, el('td', peer.fileCount, 'num'), size);
      return tr;
    });
    tbody('peers').replaceChildren(...rows);
    const files = answer.peers.reduce((sum, peer) => sum + peer.fileCount, 0);
    byId('peers-summary').textContent =
      answer.peers.length === 0
        ? 'No peers in the view yet.'
        : answer.peers.length +
          ' peers, ' +
          files +
          ' files' +
          (answer.stale ? ' — the view is not yet loaded and may be stale' : '');
  }

  // The page's token for requests that change state; only a page of this origin can read it.
  function csrfToken(): string {
    return meta('p2p-csrf');
  }

  function showDownloadNote(text: string): void {
    const note = byId('downloads-note');
    note.textContent = text;
    note.hidden = text === '';
  }

  // Saves a verified copy into this peer's share (downloads/), as p2p get does; progress comes as events.
  async function startDownload(file: FileSummary): Promise<void> {
    showDownloadNote('');
    try {
      const response = await fetch('/api/downloads', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-P2P-CSRF': csrfToken() },
        body: JSON.stringify({ sha256: String(file.sha256), name: String(file.name) }),
      });
      if (!response.ok) {
        const message = refusal(await response.json().catch(() => undefined), response.status);
        showDownloadNote(`Could not start the download of ${String(file.name)}: ${message}`);
      }
    } catch (err) {
      showDownloadNote(`Could not start the download: ${errorText(err)}`);
    }
  }

  function getButton(file: FileSummary): HTMLButtonElement {
    const button = el('button', 'Get', 'small get');
    button.type = 'button';
    button.title = 'download a verified copy into this peer’s share (downloads/)';
    button.addEventListener('click', () => void startDownload(file));
    return button;
  }

  async function refresh(): Promise<void> {
    try {
      const [status, peers] = await Promise.all([
        getJson<PeerStatus>('/api/status'),
        getJson<PeerList>('/api/peers'),
      ]);
      renderStatus(status);
      renderPeers(peers);
      byId('status-error').hidden = true;
    } catch (err) {
      const note = byId('status-error');
      note.textContent = `This peer did not answer: ${errorText(err)}`;
      note.hidden = false;
      const badge = byId('broker-badge');
      badge.textContent = 'unreachable';
      badge.className = 'badge badge-bad';
    } finally {
      setTimeout(refresh, REFRESH_INTERVAL_MS);
    }
  }

  function renderResults(answer: SearchAnswer): void {
    const rows = answer.results.map((result) => {
      const tr = el('tr');
      const size = el('td', humanSize(result.size), 'num');
      size.title = `${result.size} bytes`;
      const sha = el('td', `${String(result.sha256).slice(0, 12)}…`, 'mono');
      sha.title = String(result.sha256);
      // Get runs the verified multi-source download; there is no plain link that would bypass the check.
      const download = el('td');
      const actions = el('span', undefined, 'row-actions');
      actions.append(getButton(result));
      download.append(actions);
      tr.append(el('td', result.name, 'name'), size, peerCell(result.peerId, result.peerName), sha, download);
      return tr;
    });
    const table = byId('results');
    tbody('results').replaceChildren(...rows);
    table.hidden = rows.length === 0;

    const note = byId('search-view-note');
    if (answer.source === 'network-view') {
      note.textContent =
        'No superpeer answered' +
        (answer.superpeerError ? ` (${answer.superpeerError})` : '') +
        ': these results come from this peer’s own view of the network' +
        (answer.stale ? ' and may miss recent changes.' : '.');
      note.hidden = false;
    } else {
      note.hidden = true;
    }
    byId('search-summary').textContent =
      rows.length === 0
        ? 'No file matches.'
        : rows.length +
          (rows.length === 1 ? ' result' : ' results') +
          (answer.truncated ? ' (more matched; refine the words to see them)' : '') +
          (answer.source === 'superpeer' ? ', from a superpeer.' : '.');
  }

  async function search(text: string): Promise<void> {
    const serial = ++searchSerial;
    const button = byId<HTMLButtonElement>('search-button');
    button.disabled = true;
    byId('search-summary').textContent = 'Searching…';
    try {
      const query = new URLSearchParams({ q: text, limit: String(SEARCH_LIMIT) });
      const answer = await getJson<SearchAnswer>(`/api/search?${query.toString()}`);
      if (serial === searchSerial) renderResults(answer);
    } catch (err) {
      if (serial !== searchSerial) return;
      byId('results').hidden = true;
      byId('search-view-note').hidden = true;
      byId('search-summary').textContent = `Search failed: ${errorText(err)}`;
    } finally {
      if (serial === searchSerial) button.disabled = false;
    }
  }

  // Shared with live.js (watches, downloads, this peer's files).
  window.P2P = Object.freeze({
    el,
    byId,
    tbody,
    refreshIntervalMs: REFRESH_INTERVAL_MS,
    humanSize,
    link,
    peerCell,
    getButton,
    getJson,
    errorText,
    ownPeerId: () => ownPeerId,
  });

  function start(): void {
    const input = byId<HTMLInputElement>('q');
    byId('search-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (text === '') return;
      history.replaceState(null, '', `?q=${encodeURIComponent(text)}`);
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
