/**
 * Search benchmark of the network index (not a test). Builds an index of N files (default 1,000,000) over
 * 100 peers from names generated with a seeded PRNG, then reports build time, heap used, search latency
 * percentiles for three query kinds, the same queries against a naive linear scan (as a speed-up ratio,
 * since absolute times on a shared machine are noisy) and the cost of typical updates.
 *
 *   npx tsc -p . && node dist/scripts/bench-search.js [files]
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FileEntry } from '../libs/protocol/index.js';
import { NetworkIndex, type Query, tokenize } from '../libs/search/index.js';
import { prng } from './support/prng.js';

const SEED = 42;
const PEERS = 100;
const QUERIES_PER_KIND = 2000;
const WARMUP_QUERIES = 200;
const NAIVE_QUERIES_PER_KIND = 25;
const LIMIT = 50;

const COMMON_WORDS = `music photos video docs backup holiday summer winter family party live mix remix
  album track intro final draft report invoice scan img dsc movie series season episode part disc cover
  notes book paper thesis slides project code data export archive old new best of the and my your love
  night day city beach trip wedding birthday game save screenshot wallpaper camera phone work school
  home garden kitchen recipe budget plan meeting minutes contract letter resume manual guide tutorial`
  .split(/\s+/)
  .filter(Boolean);
const FOLDERS = [
  'music',
  'photos',
  'videos',
  'documents',
  'downloads',
  'books',
  'projects',
  'backup',
  'misc',
];
const EXTENSIONS = ['jpg', 'JPG', 'png', 'mp3', 'flac', 'mp4', 'mkv', 'pdf', 'docx', 'txt', 'zip', 'iso'];
const SYLLABLES = `ka ri to ma ne su lo vi da fe gu ho ji ke li mo nu pa ro se ta ve wu xa yo ze bri cla
  dro fle gri plo stra tri vel mar son den lin bor cas tel ran`
  .split(/\s+/)
  .filter(Boolean);

/** Common words first, then a long tail of made-up words; `pickWord` draws with a Zipf-like skew. */
function buildVocabulary(size: number): string[] {
  const random = prng(SEED);
  const words = new Set(COMMON_WORDS);
  while (words.size < size) {
    const syllables = 2 + Math.floor(random() * 3);
    let word = '';
    for (let i = 0; i < syllables; i++) word += SYLLABLES[Math.floor(random() * SYLLABLES.length)];
    words.add(word);
  }
  return [...words];
}

function hex(random: () => number, length: number): string {
  let out = '';
  while (out.length < length)
    out += Math.floor(random() * 0x100000000)
      .toString(16)
      .padStart(8, '0');
  return out.slice(0, length);
}

function makeGenerator(vocabulary: readonly string[]) {
  const logSize = Math.log(vocabulary.length);
  return (peer: number, count: number): FileEntry[] => {
    const random = prng(SEED * 1000 + peer);
    const pickWord = () => vocabulary[Math.floor(Math.exp(random() * logSize)) - 1]!;
    const files = new Map<string, FileEntry>();
    while (files.size < count) {
      const words = 2 + Math.floor(random() * 3);
      let name = `${FOLDERS[Math.floor(random() * FOLDERS.length)]}/`;
      for (let i = 0; i < words; i++) name += `${i === 0 ? '' : random() < 0.5 ? ' ' : '_'}${pickWord()}`;
      if (random() < 0.5) name += ` ${Math.floor(random() * 10000)}`;
      name += `.${EXTENSIONS[Math.floor(random() * EXTENSIONS.length)]}`;
      files.set(name, {
        name,
        size: Math.floor(random() * 50_000_000),
        // Some content is shared by several peers (popular files), most is unique.
        sha256: random() < 0.05 ? hex(prng(Math.floor(random() * 1000)), 64) : hex(random, 64),
        mtimeMs: 1_700_000_000_000 + Math.floor(random() * 1e10),
      });
    }
    // Through JSON like a real file list off the wire, which also gives flat strings instead of the ropes
    // that `+=` builds (those would inflate the heap figure).
    return JSON.parse(JSON.stringify([...files.values()])) as FileEntry[];
  };
}

function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function timeEach<T>(items: readonly T[], run: (item: T) => void): number[] {
  const times: number[] = [];
  for (const item of items) {
    const start = process.hrtime.bigint();
    run(item);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return times;
}

const ms = (value: number) => `${value < 1 ? value.toFixed(4) : value.toFixed(1)} ms`;

async function main(): Promise<void> {
  const totalFiles = Number(process.argv[2] ?? 1_000_000);
  if (!Number.isInteger(totalFiles) || totalFiles < PEERS)
    throw new Error(`usage: bench-search [files >= ${PEERS}]`);
  const perPeer = Math.floor(totalFiles / PEERS);
  const gc = exposeGc();
  const vocabulary = buildVocabulary(30_000);
  const generate = makeGenerator(vocabulary);
  const random = prng(SEED + 1);

  gc();
  // Heap and external memory (typed arrays and the index's mapped columns, which live outside the heap).
  const used = () => {
    const usage = process.memoryUsage();
    return usage.heapUsed + usage.external;
  };
  const heapBefore = used();
  const index = new NetworkIndex();
  const samples: FileEntry[] = [];
  let applyMs = 0;
  const buildStart = performance.now();
  for (let p = 0; p < PEERS; p++) {
    const files = generate(p, perPeer);
    for (let i = 0; i < 30; i++) samples.push(files[Math.floor(random() * files.length)]!);
    const start = performance.now();
    index.applyFull({
      peerId: `peer-${p}`,
      instanceId: 'instance-1',
      url: `http://10.0.0.${p}:8080`,
      seq: 1,
      files,
    });
    applyMs += performance.now() - start;
  }
  const buildMs = performance.now() - buildStart;
  gc();
  const heapAfter = used();
  console.log(
    `index: ${index.fileCount} files, ${index.peerCount} peers, ${index.tokenCount} distinct tokens`,
  );
  console.log(`build: ${ms(applyMs)} in applyFull (${ms(buildMs)} including name generation)`);
  console.log(
    `memory used by the index (heap + external): ${((heapAfter - heapBefore) / 2 ** 20).toFixed(0)} MiB ` +
      `(${((heapAfter - heapBefore) / index.fileCount).toFixed(0)} B/file; total ${(heapAfter / 2 ** 20).toFixed(0)} MiB)`,
  );

  // (a) two words from a sample file: its two rarest words (latest in the vocabulary), cut to 4+ letters.
  const rank = new Map(vocabulary.map((word, i) => [word, i]));
  const selective: Query[] = samples.slice(0, QUERIES_PER_KIND + WARMUP_QUERIES).map((file) => {
    const words = tokenize(file.name).filter((token) => rank.has(token));
    words.sort((a, b) => rank.get(b)! - rank.get(a)!);
    const cut = (word: string) => word.slice(0, Math.max(4, word.length - Math.floor(random() * 3)));
    return { kind: 'words', words: words.slice(0, 2).map(cut) };
  });
  // (b) one short prefix of a common word.
  const common: Query[] = Array.from({ length: QUERIES_PER_KIND + WARMUP_QUERIES }, () => ({
    kind: 'words',
    words: [COMMON_WORDS[Math.floor(random() * 20)]!.slice(0, 2)],
  }));
  // (c) the content hash of a sample file.
  const bySha: Query[] = samples
    .slice(-(QUERIES_PER_KIND + WARMUP_QUERIES))
    .map((file) => ({ kind: 'sha256', sha256: file.sha256 }));

  // (d) three common words that are rare together: each among the 40 most common, at most 20 files with all.
  const adversarial: Query[] = [];
  for (
    let attempt = 0;
    adversarial.length < QUERIES_PER_KIND + WARMUP_QUERIES && attempt < 200_000;
    attempt++
  ) {
    const words = [0, 1, 2].map(() => COMMON_WORDS[Math.floor(random() * 40)]!);
    if (new Set(words).size < 3) continue;
    const query: Query = { kind: 'words', words };
    if (index.search(query, 20, Number.POSITIVE_INFINITY).results.length < 20) adversarial.push(query);
  }

  const naive = buildNaive(index, PEERS);
  console.log(
    `\nsearch (limit ${LIMIT}, ${QUERIES_PER_KIND} queries each after ${WARMUP_QUERIES} warm-up; ` +
      `naive = linear scan over all ${index.fileCount} files, stopping at limit + 1, on ${NAIVE_QUERIES_PER_KIND} of the queries)`,
  );
  for (const [label, queries] of [
    ['(a) selective 2-word', selective],
    ['(b) common 2-letter prefix', common],
    ['(c) sha256 lookup', bySha],
    ['(d) 3 common words, rare together', adversarial],
  ] as const) {
    let matched = 0;
    let truncated = 0;
    let partial = 0;
    // Collect the set-up's garbage first, so that its pauses are not billed to the queries.
    gc();
    timeEach(queries.slice(0, WARMUP_QUERIES), (query) => index.search(query, LIMIT));
    const measured = queries.slice(WARMUP_QUERIES);
    const times = timeEach(measured, (query) => {
      const reply = index.search(query, LIMIT);
      matched += reply.results.length;
      if (reply.truncated) truncated++;
      if (reply.partial) partial++;
    });
    const sorted = [...times].sort((a, b) => a - b);
    const subset = measured.slice(0, NAIVE_QUERIES_PER_KIND);
    for (const query of subset) {
      const fromIndex = index.search(query, LIMIT);
      const fromScan = naive(query, LIMIT);
      if (fromIndex.partial) continue;
      if (fromScan !== fromIndex.results.length + (fromIndex.truncated ? 1 : 0)) {
        throw new Error(`index and scan disagree on ${JSON.stringify(query)}`);
      }
    }
    const naiveTimes = timeEach(subset, (query) => naive(query, LIMIT)).sort((a, b) => a - b);
    const indexSubset = [...times.slice(0, NAIVE_QUERIES_PER_KIND)].sort((a, b) => a - b);
    console.log(
      `${label.padEnd(34)} p50 ${ms(percentile(sorted, 0.5))}  p99 ${ms(percentile(sorted, 0.99))}  ` +
        `avg results ${(matched / measured.length).toFixed(1)}, truncated ${((100 * truncated) / measured.length).toFixed(0)}%, ` +
        `partial ${((100 * partial) / measured.length).toFixed(0)}%  | ` +
        `naive p50 ${ms(percentile(naiveTimes, 0.5))} → speed-up ×${(percentile(naiveTimes, 0.5) / percentile(indexSubset, 0.5)).toFixed(0)}`,
    );
  }

  await benchUpdates(index, generate, perPeer);
  gc();
  console.log(`\nheap + external after the updates: ${(used() / 2 ** 20).toFixed(0)} MiB`);
}

/** A plain scan over every file, with names pre-tokenized: the fastest version of "no index". */
function buildNaive(index: NetworkIndex, peers: number): (query: Query, limit: number) => number {
  const keys: string[] = [];
  const shas: string[] = [];
  for (let p = 0; p < peers; p++) {
    for (const file of index.peerFiles(`peer-${p}`)) {
      keys.push(`\0${tokenize(file.name).join('\0')}`);
      shas.push(file.sha256);
    }
  }
  return (query, limit) => {
    let found = 0;
    if (query.kind === 'sha256') {
      for (let i = 0; i < shas.length && found <= limit; i++) if (shas[i] === query.sha256) found++;
      return found;
    }
    const needles = query.words.map((word) => `\0${word}`);
    for (let i = 0; i < keys.length && found <= limit; i++) {
      const key = keys[i]!;
      if (needles.every((needle) => key.includes(needle))) found++;
    }
    return found;
  };
}

async function benchUpdates(
  index: NetworkIndex,
  generate: (peer: number, count: number) => FileEntry[],
  perPeer: number,
) {
  console.log('\nupdates (index kept at full size)');
  const peerId = 'peer-0';
  const files = index.peerFiles(peerId);
  const rounds = 200;
  let seq = index.getPeer(peerId)!.seq;
  const extra = generate(10_000, rounds * 50);
  const deltaTimes = timeEach(
    Array.from({ length: rounds }, (_, i) => i),
    (i) => {
      const result = index.applyDelta({
        peerId,
        instanceId: 'instance-1',
        seq: ++seq,
        upserted: extra.slice(i * 50, i * 50 + 50),
        removed: files.slice(i * 50, i * 50 + 50).map((file) => file.name),
      });
      if (result !== 'applied') throw new Error(`delta ${result}`);
    },
  ).sort((a, b) => a - b);
  console.log(
    `applyDelta (50 upserts + 50 removals): p50 ${ms(percentile(deltaTimes, 0.5))}, p99 ${ms(percentile(deltaTimes, 0.99))}`,
  );

  const current = index.peerFiles(peerId);
  const state = { peerId, instanceId: 'instance-1', url: 'http://10.0.0.0:8080', seq, files: current };
  let start = performance.now();
  const unchanged = index.applyFull(state);
  console.log(
    `applyFull resync of an unchanged peer (${current.length} files, '${unchanged}'): ${ms(performance.now() - start)}`,
  );
  start = performance.now();
  index.removePeer(peerId);
  console.log(`removePeer (${current.length} files): ${ms(performance.now() - start)}`);
  start = performance.now();
  index.applyFull({ ...state, instanceId: 'instance-2', seq: 1 });
  console.log(`applyFull of a returning peer (${current.length} files): ${ms(performance.now() - start)}`);
  const big = generate(20_000, perPeer * 10);
  const bigState = {
    peerId: 'peer-big',
    instanceId: 'instance-1',
    url: 'http://10.0.1.1:8080',
    seq: 1,
    files: big,
  };
  await sliced(`applyFullAsync of a new peer with ${big.length} files`, () => index.applyFullAsync(bigState));
  await sliced('removePeerAsync of that peer', () => index.removePeerAsync('peer-big'));
}

/** Runs an async update and reports its time and the longest event-loop delay it caused. */
async function sliced(label: string, run: () => Promise<unknown>): Promise<void> {
  const delay = monitorEventLoopDelay({ resolution: 2 });
  delay.enable();
  const start = performance.now();
  await run();
  const elapsed = performance.now() - start;
  delay.disable();
  console.log(`${label}: ${ms(elapsed)}, longest event-loop delay ${ms(delay.max / 1e6)}`);
}

await main();
