import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { topologyNames } from '../../libs/protocol/index.js';
import { AMQP_URL, type RunningPeer, startNetwork, type TestNetwork } from '../helpers/network.js';

const CHROMIUM = '/usr/bin/chromium';
const browserSkip = existsSync(CHROMIUM) ? false : `no ${CHROMIUM}`;
const SCREENSHOT = '/tmp/p2p-web-watch.png';

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

async function pageToken(peer: RunningPeer): Promise<string> {
  const html = await (await fetch(`${peer.url}/`)).text();
  const token = /<meta name="p2p-csrf" content="([A-Za-z0-9_-]+)">/.exec(html)?.[1];
  assert.ok(token, 'the page embeds its token');
  return token;
}

function postDownload(peer: RunningPeer, body: unknown, headers: Record<string, string>): Promise<Response> {
  return fetch(`${peer.url}/api/downloads`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

async function downloadsOf(peer: RunningPeer): Promise<unknown[]> {
  return ((await (await fetch(`${peer.url}/api/downloads`)).json()) as { downloads: unknown[] }).downloads;
}

async function cleanupWatchExchanges(namespace: string): Promise<void> {
  const names = topologyNames(namespace);
  const connection = await amqp.connect(AMQP_URL);
  try {
    const channel = await connection.createChannel();
    await channel.deleteExchange(names.watchesExchange);
    await channel.deleteExchange(names.watchersExchange);
    await channel.close();
  } finally {
    await connection.close();
  }
}

describe('the page: live watch, verified get, own files, cross-origin refusal', () => {
  let net: TestNetwork;
  let own: RunningPeer;
  let other: RunningPeer;
  const existing = randomBytes(40_000);

  before(async () => {
    net = await startNetwork({
      label: 'webwatch',
      peers: [{ 'mine.txt': 'my own file\n' }, { 'handout.bin': existing }],
    });
    [own, other] = net.peers as [RunningPeer, RunningPeer];
  });

  after(async () => {
    await net?.stop();
    await cleanupWatchExchanges(net.namespace).catch(() => undefined);
  });

  test('a download request needs the page token and the page’s own origin', async () => {
    const token = await pageToken(own);
    const body = { sha256: sha(existing), name: 'handout.bin' };
    const before = (await downloadsOf(own)).length;
    const noToken = await postDownload(own, body, {});
    assert.equal(noToken.status, 403);
    const wrongToken = await postDownload(own, body, { 'X-P2P-CSRF': `${token.slice(0, -1)}x` });
    assert.equal(wrongToken.status, 403);
    const foreignOrigin = await postDownload(own, body, {
      'X-P2P-CSRF': token,
      Origin: 'http://evil.example',
    });
    assert.equal(foreignOrigin.status, 403);
    const crossSite = await postDownload(own, body, { 'X-P2P-CSRF': token, 'Sec-Fetch-Site': 'cross-site' });
    assert.equal(crossSite.status, 403);
    const form = await fetch(`${own.url}/api/downloads`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-P2P-CSRF': token },
      body: `sha256=${sha(existing)}&name=handout.bin`,
    });
    assert.equal(form.status, 415, 'only JSON bodies');
    assert.equal((await downloadsOf(own)).length, before, 'no refused request started a download');
    const badName = await postDownload(
      own,
      { sha256: sha(existing), name: '.hidden' },
      { 'X-P2P-CSRF': token },
    );
    assert.equal(badName.status, 400);
    const unknown = await postDownload(
      own,
      { sha256: 'f'.repeat(64), name: 'x.bin' },
      { 'X-P2P-CSRF': token },
    );
    assert.equal(unknown.status, 404);
  });

  test('PEER_WEB_LOOPBACK_ONLY: the page and /api answer loopback only; /files stays public', async (t) => {
    const address = Object.values(os.networkInterfaces())
      .flat()
      .find((entry) => entry && entry.family === 'IPv4' && !entry.internal)?.address;
    const peer = await net.startPeer(
      'loopback',
      { 'public.txt': 'public\n' },
      {
        PEER_HTTP_HOST: '0.0.0.0',
        PEER_WEB_LOOPBACK_ONLY: 'true',
      },
    );
    const port = new URL(peer.url).port;
    assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${port}/api/status`)).status, 200);
    if (!address) {
      t.diagnostic('no non-loopback IPv4 address on this machine: the refusal half is not checked');
      return;
    }
    assert.equal((await fetch(`http://${address}:${port}/`)).status, 403);
    assert.equal((await fetch(`http://${address}:${port}/api/status`)).status, 403);
    assert.equal((await fetch(`http://${address}:${port}/api/downloads`)).status, 403);
    assert.equal((await fetch(`http://${address}:${port}/assets/app.js`)).status, 403);
    assert.equal((await fetch(`http://${address}:${port}/files/public.txt`)).status, 200);
    assert.equal((await fetch(`http://${address}:${port}/healthz`)).status, 200);
    await peer.process.stop();
  });

  test('in a browser: watch a query, a dropped file appears live; Get saves a verified copy with progress; another origin cannot', {
    skip: browserSkip,
  }, async (t) => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-sync',
      ],
    });
    t.after(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
    const problems: string[] = [];
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });

    await page.goto(`${own.url}/`);
    // This peer's files, with their full hashes.
    await page.locator('#own-files tbody tr', { hasText: 'mine.txt' }).waitFor({ timeout: 5000 });
    assert.equal(
      await page.locator('#own-files tbody tr', { hasText: 'mine.txt' }).locator('td.hash').textContent(),
      sha('my own file\n'),
    );

    await page.fill('#watch-q', 'lecture');
    await page.click('#watch-button');
    await page.locator('#watch-status', { hasText: 'Watching "lecture"' }).waitFor({ timeout: 10_000 });

    // A small file with a hostile name: shown live, as text.
    const hostile = 'Lecture <img src=x onerror=alert(1)> 12.txt';
    const droppedAt = Date.now();
    await fs.writeFile(path.join(other.shareDir, hostile), 'slides\n');
    const first = page.locator('#watch-results tbody tr', { hasText: 'Lecture <img' });
    await first.waitFor({ timeout: 10_000 });
    const shownMs = Date.now() - droppedAt;
    t.diagnostic(`the new file appeared in the page ${shownMs} ms after it was written`);
    assert.ok(shownMs < 2000, `shown within 2 s (took ${shownMs} ms)`);
    assert.equal(await first.locator('td.name').textContent(), hostile);
    assert.equal(await page.locator('img').count(), 0, 'no element made from a file name');

    // A big one, so that the download takes long enough to show progress.
    const name = 'Lecture 13 recording.bin';
    const content = randomBytes(24 * 1024 * 1024);
    await fs.writeFile(path.join(other.shareDir, name), content);
    const row = page.locator('#watch-results tbody tr', { hasText: name });
    await row.waitFor({ timeout: 10_000 });

    // Every value the progress bars take, as the page updates them.
    // (A string: the tests compile without the DOM types.)
    await page.evaluate(`(() => {
      const seen = [];
      globalThis.progressSeen = seen;
      new MutationObserver(() => {
        for (const bar of document.querySelectorAll('#downloads progress')) seen.push(Number(bar.getAttribute('value')));
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    })()`);
    await row.locator('button.get').click();
    const job = page.locator('#downloads tbody tr', { hasText: name });
    await job.waitFor({ timeout: 5000 });
    // Progress: the bar exists while it runs and is full when the copy is verified.
    await job.locator('td.state-done').waitFor({ timeout: 30_000 });
    const bar = await job
      .locator('progress')
      .evaluate((p) => [p.getAttribute('value'), p.getAttribute('max')]);
    assert.deepEqual(bar, [String(content.length), String(content.length)]);
    const seen = await page.evaluate(
      () => (globalThis as unknown as { progressSeen: number[] }).progressSeen,
    );
    t.diagnostic(`progress values shown: ${[...new Set(seen)].join(', ')}`);
    assert.ok(
      seen.length >= 2 && seen.every((value, i) => i === 0 || value >= seen[i - 1]!),
      'progress only grows',
    );
    assert.equal(seen.at(-1), content.length);
    assert.match((await job.locator('td.state').textContent()) ?? '', /^verified ✓/);
    const saved = path.join(own.shareDir, 'downloads', name);
    assert.equal(sha(await fs.readFile(saved)), sha(content), 'the verified copy is in the share');
    // The share picks it up: it is listed among this peer's files, with its hash.
    await page.locator('#own-files tbody tr', { hasText: `downloads/${name}` }).waitFor({ timeout: 15_000 });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    t.diagnostic(`screenshot: ${SCREENSHOT}`);

    // A page of another origin: its script may send, but nothing starts.
    const evil = http.createServer((_req, res) =>
      res.writeHead(200, { 'Content-Type': 'text/html' }).end('<p>evil</p>'),
    );
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    t.after(() => evil.close());
    const evilPage = await browser.newPage();
    await evilPage.goto(`http://localhost:${(evil.address() as AddressInfo).port}/`);
    const before = (await downloadsOf(own)).length;
    const attempts = await evilPage.evaluate(
      async ({ target, sha256 }) => {
        const out: string[] = [];
        const body = JSON.stringify({ sha256, name: 'stolen.bin' });
        try {
          await fetch(`${target}/api/downloads`, {
            method: 'POST',
            mode: 'no-cors',
            headers: { 'Content-Type': 'text/plain' },
            body,
          });
          out.push('no-cors sent');
        } catch (err) {
          out.push(`no-cors failed: ${String(err)}`);
        }
        try {
          const response = await fetch(`${target}/api/downloads`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', 'X-P2P-CSRF': 'guess' },
            body,
          });
          out.push(`cors status ${response.status}`);
        } catch (err) {
          out.push(`cors failed: ${String(err)}`);
        }
        return out;
      },
      { target: own.url, sha256: sha(existing) },
    );
    t.diagnostic(`cross-origin attempts: ${attempts.join('; ')}`);
    assert.equal(attempts[0], 'no-cors sent', 'the browser sent the simple request');
    assert.match(attempts[1] ?? '', /^cors failed/, 'the preflighted request is blocked');
    assert.equal((await downloadsOf(own)).length, before, 'nothing started');
    assert.equal(existsSync(path.join(own.shareDir, 'downloads', 'stolen.bin')), false);

    assert.deepEqual(dialogs, []);
    assert.deepEqual(problems, []);
  });
});
