import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileUrl } from '../../libs/protocol/index.js';
import { type RunningPeer, startNetwork, type TestNetwork, waitUntil } from '../helpers/network.js';

const CHROMIUM = '/usr/bin/chromium';
// Decided at load time, so a machine without a browser reports a skip with its reason, never a pass.
const browserSkip = existsSync(CHROMIUM) ? false : `no ${CHROMIUM}`;
const SCREENSHOT = '/tmp/p2p-web.png';
const SCREENSHOT_NO_SUPERPEER = '/tmp/p2p-web-no-superpeer.png';

const HOSTILE_NAME = 'webtest <img src=x onerror=alert(1)>.txt';
const BIG_SIZE_BYTES = 16 * 1024 * 1024;

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** The value of one series (`name{labels}` exactly as prom-client prints it) in a scrape; absent is an error. */
function sampleValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line !== undefined, `series ${series} in the scrape`);
  return Number(line.slice(series.length + 1));
}

async function scrape(peer: RunningPeer): Promise<string> {
  const response = await fetch(`${peer.url}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

interface ApiAnswer {
  source: string;
  stale: boolean;
  results: Array<{ name: string; peerId: string; url: string; sha256: string }>;
}

describe('the peer web page and metrics', () => {
  let net: TestNetwork;
  const shares: Array<Record<string, string | Buffer>> = [
    { 'webtest-own.txt': 'peer one\n', 'bulk/archive.bin': Buffer.alloc(BIG_SIZE_BYTES, 7) },
    {
      'webtest-report.pdf': randomBytes(150_000),
      [HOSTILE_NAME]: 'a name that is HTML\n',
      'docs/webtest guide.md': '# guide\n',
    },
    { 'webtest-photo.jpg': randomBytes(2_500_000) },
  ];

  before(async () => {
    // A short superpeer wait keeps the no-superpeer test quick.
    net = await startNetwork({ label: 'web', peers: shares, env: { PEER_SEARCH_TIMEOUT_MS: '1000' } });
    // Every peer's view holds all three, and has loaded a whole snapshot, before any test looks at it:
    // broadcasts alone can bring the 6 files while a snapshot that timed out (1 s here) waits to be retried.
    await waitUntil(
      async () => {
        for (const peer of net.peers) {
          const text = await scrape(peer);
          if (sampleValue(text, 'p2p_peer_view_files') !== 6) return false;
          if (sampleValue(text, 'p2p_peer_view_stale') !== 0) return false;
        }
        return true;
      },
      { timeoutMs: 15_000, what: 'every peer’s view to be loaded and hold the 6 files' },
    );
  });

  after(async () => {
    await net?.stop();
  });

  test('/metrics answers the Prometheus text format with the peer’s metrics', async () => {
    const peer = net.peers[0]!;
    const response = await fetch(`${peer.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await response.text();
    for (const name of [
      'p2p_peer_transfers_total',
      'p2p_peer_transfers_incomplete_total',
      'p2p_peer_served_bytes_total',
      'p2p_peer_file_requests_in_flight',
      'p2p_peer_searches_total',
      'p2p_peer_search_seconds',
      'p2p_peer_shared_files',
      'p2p_peer_view_peers',
      'p2p_peer_view_files',
      'p2p_peer_view_stale',
      'p2p_peer_broker_connected',
      'p2p_peer_event_loop_max_ms',
      'p2p_peer_longest_task_cpu_ms',
      'p2p_peer_process_cpu_user_seconds_total',
      'p2p_peer_nodejs_heap_size_used_bytes',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
    assert.equal(sampleValue(text, 'p2p_peer_shared_files'), 2);
    assert.equal(sampleValue(text, 'p2p_peer_broker_connected'), 1);
    assert.equal(sampleValue(text, 'p2p_peer_view_peers'), 3);
    assert.equal(sampleValue(text, 'p2p_peer_view_files'), 6);
    assert.equal(sampleValue(text, 'p2p_peer_view_stale'), 0);
    assert.equal(sampleValue(text, 'p2p_peer_searches_total{source="network-view"}'), 0);
    // Started by bin/p2p.js, the peer held V8's young generation before its modules loaded: it stays at its
    // initial 1 MB, where loading them would have grown it to 16 MB (resident memory).
    const young = sampleValue(text, 'p2p_peer_nodejs_heap_space_size_total_bytes{space="new"}');
    assert.ok(young <= 2 ** 21, `young generation ${(young / 2 ** 20).toFixed(1)} MB`);
  });

  test('a download from a peer counts in its transfer metrics', async () => {
    const peer = net.peers[0]!;
    const before = await scrape(peer);
    const ok = 'p2p_peer_transfers_total{status="200"}';
    const notFound = 'p2p_peer_transfers_total{status="404"}';
    const response = await fetch(fileUrl(peer.url, 'webtest-own.txt'));
    assert.equal(response.status, 200);
    assert.equal(sha(Buffer.from(await response.arrayBuffer())), sha('peer one\n'));
    // An unknown name is refused before the lookup and must not count as a transfer.
    assert.equal((await fetch(fileUrl(peer.url, 'no-such-file.txt'))).status, 404);
    // The router reports after the body has left, which may be just after the client has it all.
    const afterText = await waitUntil(
      async () => {
        const text = await scrape(peer);
        return sampleValue(text, ok) === sampleValue(before, ok) + 1 ? text : undefined;
      },
      { timeoutMs: 3000, what: 'the 200 transfer counter to increase' },
    );
    assert.equal(
      sampleValue(afterText, 'p2p_peer_served_bytes_total'),
      sampleValue(before, 'p2p_peer_served_bytes_total') + 'peer one\n'.length,
    );
    assert.equal(sampleValue(afterText, notFound), sampleValue(before, notFound));
  });

  test('a transfer in progress is in flight; a client that goes away leaves an incomplete transfer', async () => {
    const peer = net.peers[0]!;
    const inFlight = 'p2p_peer_file_requests_in_flight';
    const incomplete = 'p2p_peer_transfers_incomplete_total';
    const before = await scrape(peer);
    assert.equal(sampleValue(before, inFlight), 0);
    const response = await fetch(fileUrl(peer.url, 'bulk/archive.bin'));
    assert.equal(response.status, 200);
    // The body is not read: 16 MiB cannot all sit in socket buffers, so the server is still sending.
    await waitUntil(async () => sampleValue(await scrape(peer), inFlight) === 1, {
      timeoutMs: 3000,
      what: 'one file request in flight',
    });
    await response.body?.cancel();
    const afterText = await waitUntil(
      async () => {
        const text = await scrape(peer);
        return sampleValue(text, inFlight) === 0 &&
          sampleValue(text, incomplete) > sampleValue(before, incomplete)
          ? text
          : undefined;
      },
      { timeoutMs: 5000, what: 'the transfer to end as incomplete' },
    );
    const served =
      sampleValue(afterText, 'p2p_peer_served_bytes_total') -
      sampleValue(before, 'p2p_peer_served_bytes_total');
    assert.ok(served > 0 && served < BIG_SIZE_BYTES, `partial bytes counted: ${served}`);
  });

  test('a search through the API counts by source and is timed', async () => {
    const peer = net.peers[1]!;
    const before = await scrape(peer);
    const response = await fetch(`${peer.url}/api/search?q=webtest`);
    assert.equal(response.status, 200);
    const answer = (await response.json()) as ApiAnswer;
    assert.equal(answer.source, 'superpeer');
    assert.equal(answer.results.length, 5);
    const text = await scrape(peer);
    const series = '{source="superpeer"}';
    assert.equal(
      sampleValue(text, `p2p_peer_searches_total${series}`),
      sampleValue(before, `p2p_peer_searches_total${series}`) + 1,
    );
    assert.equal(
      sampleValue(text, `p2p_peer_search_seconds_count${series}`),
      sampleValue(before, `p2p_peer_search_seconds_count${series}`) + 1,
    );
    // A refused query is not an answered search.
    assert.equal((await fetch(`${peer.url}/api/search?q=%20%2F%20`)).status, 400);
    assert.equal(
      sampleValue(await scrape(peer), `p2p_peer_searches_total${series}`),
      sampleValue(text, `p2p_peer_searches_total${series}`),
    );
  });

  test('GET / is an HTML page under a strict Content-Security-Policy; its script is served beside it', async () => {
    const peer = net.peers[0]!;
    const response = await fetch(`${peer.url}/`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
    const csp = response.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    const html = await response.text();
    assert.match(html, /<script src="\/assets\/app\.js" defer><\/script>/);
    assert.doesNotMatch(html, /<script>/, 'no inline script (the CSP would block it)');

    const script = await fetch(`${peer.url}/assets/app.js`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/);
    const code = await script.text();
    assert.doesNotMatch(code, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    const css = await fetch(`${peer.url}/assets/app.css`);
    assert.match(css.headers.get('content-type') ?? '', /^text\/css/);
    assert.equal((await fetch(`${peer.url}/assets/missing.js`)).status, 404);
  });

  test('in a browser, the page searches the network and shows hostile names as text', {
    skip: browserSkip,
  }, async (t) => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    t.after(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const dialogs: string[] = [];
    const problems: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });

    const [own, other, third] = net.peers as [RunningPeer, RunningPeer, RunningPeer];
    await page.goto(`${own.url}/`);
    await page.locator('#peer-id', { hasText: own.peerId }).waitFor({ timeout: 5000 });
    assert.equal(await page.textContent('#broker-badge'), 'connected');
    // nth(i).waitFor() waits for at least i + 1 rows; the count then says exactly how many.
    await page.locator('#peers tbody tr').nth(2).waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#peers tbody tr').count(), 3);

    await page.fill('#q', 'webtest');
    await page.press('#q', 'Enter');
    await page.locator('#results tbody tr').nth(4).waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#results tbody tr').count(), 5);
    const rows = await page.$$eval('#results tbody tr', (trs) =>
      trs.map((tr) => {
        const cells = [...tr.querySelectorAll('td')];
        return {
          name: cells[0]?.textContent ?? '',
          size: cells[1]?.textContent ?? '',
          peer: cells[2]?.querySelector('span')?.textContent ?? '',
          sha: cells[3]?.textContent ?? '',
          shaTitle: cells[3]?.getAttribute('title') ?? '',
          links: cells[4]?.querySelectorAll('a').length ?? -1,
          action: cells[4]?.querySelector('button')?.textContent ?? '',
        };
      }),
    );
    assert.deepEqual(new Set(rows.map((row) => row.peer)), new Set([own.name, other.name, third.name]));
    const hostile = rows.find((row) => row.name === HOSTILE_NAME);
    assert.ok(hostile, `the hostile name shown verbatim among ${JSON.stringify(rows.map((r) => r.name))}`);
    assert.equal(hostile.peer, other.name);
    // The only way to a file from the results is Get (verified); no plain link bypasses the check.
    assert.deepEqual(new Set(rows.map((row) => `${row.links} ${row.action}`)), new Set(['0 Get']));
    assert.equal(hostile.shaTitle, sha('a name that is HTML\n'));
    assert.equal(hostile.sha, `${hostile.shaTitle.slice(0, 12)}…`);
    const photo = rows.find((row) => row.name === 'webtest-photo.jpg');
    assert.equal(photo?.size, '2.4 MiB');
    assert.equal(await page.locator('img').count(), 0, 'no element was made from a file name');
    assert.equal(await page.isHidden('#search-view-note'), true);
    assert.match((await page.textContent('#search-summary')) ?? '', /^5 results, from a superpeer/);

    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    t.diagnostic(`screenshot: ${SCREENSHOT}`);

    // Without a superpeer the page says where its results came from.
    await net.superpeer.stop();
    await page.press('#q', 'Enter');
    await page.waitForSelector('#search-view-note', { state: 'visible', timeout: 5000 });
    assert.match((await page.textContent('#search-view-note')) ?? '', /^No superpeer answered.*own view/);
    assert.equal(await page.locator('#results tbody tr').count(), 5);
    assert.equal(await page.locator('img').count(), 0);
    await page.screenshot({ path: SCREENSHOT_NO_SUPERPEER, fullPage: true });

    assert.deepEqual(dialogs, [], 'no script ran from a file name');
    assert.deepEqual(problems, []);
  });

  test('without a superpeer, an API search answers from the view and counts as network-view', async () => {
    await net.superpeer.stop();
    const peer = net.peers[2]!;
    const before = await scrape(peer);
    const answer = (await (await fetch(`${peer.url}/api/search?q=webtest`)).json()) as ApiAnswer;
    assert.equal(answer.source, 'network-view');
    assert.equal(answer.stale, true);
    assert.equal(answer.results.length, 5);
    const series = 'p2p_peer_searches_total{source="network-view"}';
    assert.equal(sampleValue(await scrape(peer), series), sampleValue(before, series) + 1);
  });
});
