/*
 * What the page's two scripts share (app.ts defines `window.P2P`, live.ts uses it) and the JSON they read.
 * The API shapes are the protocol lib's (PeerSearchAnswerSchema, PeerListAnswerSchema) and the peer's own
 * routes (api.ts, web-api.ts), restated as far as the page reads them: this program is the browser's and
 * does not see the service's modules.
 */

interface FileSummary {
  name: string;
  size: number;
  sha256: string;
}

interface SearchResult extends FileSummary {
  peerId: string;
  peerName?: string;
  url: string;
}

interface SearchAnswer {
  results: SearchResult[];
  truncated: boolean;
  source: 'superpeer' | 'network-view';
  stale: boolean;
  superpeerError?: string;
}

interface ListedPeer {
  peerId: string;
  name?: string;
  url: string;
  fileCount: number;
  totalBytes: number;
}

interface PeerList {
  stale: boolean;
  peers: ListedPeer[];
}

interface PeerStatus {
  peerId: string;
  name: string;
  url: string;
  brokerConnected: boolean;
  viewStale: boolean;
  viewPeers: number;
  viewFiles: number;
  files: number;
  shareDir: string;
}

interface DownloadJob {
  id: string;
  sha256: string;
  name: string;
  size: number;
  receivedBytes: number;
  state: 'running' | 'done' | 'failed';
  servedBy: string[];
  startedAtMs: number;
  error?: { message: string };
}

interface OwnFiles {
  total: number;
  matching: number;
  files: FileSummary[];
}

interface Serving {
  transfers: Array<{ name: string; client: string; forMs: number }>;
}

interface WatchMatch {
  event: 'added' | 'removed';
  file: SearchResult;
}

/** The helpers app.js shares with live.js. */
interface PageHelpers {
  el<K extends keyof HTMLElementTagNameMap>(
    tag: K,
    text?: string | number,
    className?: string,
  ): HTMLElementTagNameMap[K];
  byId<T extends HTMLElement = HTMLElement>(id: string): T;
  /** The body of a table of the page. */
  tbody(tableId: string): HTMLTableSectionElement;
  /** Refresh period of the page's polling, from the page's `p2p-refresh-ms` meta. */
  refreshIntervalMs: number;
  humanSize(bytes: number): string;
  link(url: string, text: string): HTMLElement;
  peerCell(peerId: string, name: string | undefined): HTMLTableCellElement;
  getButton(file: FileSummary): HTMLButtonElement;
  getJson<T>(path: string): Promise<T>;
  errorText(err: unknown): string;
  ownPeerId(): string;
}

interface Window {
  P2P: PageHelpers;
}
