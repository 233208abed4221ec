/**
 * Memory of the network's two stores at N peers × M files (default 1,000 × 1,000): the superpeer's
 * `NetworkIndex` and a peer's compact `NetworkMap`, each in its own child process. Reports RSS and heap
 * after a full GC, before, once loaded and after every peer left, and the longest event-loop delay while
 * loading and removing (all updates through the sliced async APIs). Not a test.
 *
 *   npm run bench:memory -- --peers 1000 --files 1000
 */
import { fork } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FileEntry } from '../libs/protocol/index.js';
import { NetworkIndex, NetworkMap } from '../libs/search/index.js';
import { prng } from './support/prng.js';

const { values } = parseArgs({
  options: {
    peers: { type: 'string', default: '1000' },
    files: { type: 'string', default: '1000' },
    store: { type: 'string' },
    /**
     * `unique`: every name also holds a word of its own (12 random hex digits, as camera or hash-named files
     * do), so the index holds a token per file, not a vocabulary of a few thousand.
     */
    names: { type: 'string', default: 'words' },
  },
});
const peers = Number(values.peers);
const filesPerPeer = Number(values.files);

const WORDS = `music photos video docs backup holiday summer winter family party live mix remix album track
  intro final draft report invoice scan img movie series season episode part disc cover notes book paper
  thesis slides project code data export archive night day city beach trip wedding birthday game`
  .split(/\s+/)
  .filter(Boolean);

function peerFiles(p: number): FileEntry[] {
  const random = prng(1000 + p);
  const pick = () => WORDS[Math.floor(random() * WORDS.length)]!;
  const hex = () =>
    Array.from({ length: 8 }, () =>
      Math.floor(random() * 0x100000000)
        .toString(16)
        .padStart(8, '0'),
    ).join('');
  const files: FileEntry[] = [];
  for (let i = 0; i < filesPerPeer; i++) {
    const own = values.names === 'unique' ? ` ${hex().slice(0, 12)}` : '';
    files.push({
      name: `${pick()}/${pick()} ${pick()}_${pick()}${own} ${p}-${i}.${['jpg', 'mp3', 'pdf', 'txt'][i % 4]}`,
      size: Math.floor(random() * 1e9),
      sha256: hex(),
      mtimeMs: 1_700_000_000_000 + i,
    });
  }
  // As off the wire: flat strings, not the ropes that `+` builds.
  return JSON.parse(JSON.stringify(files)) as FileEntry[];
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

async function measure(kind: 'index' | 'map'): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const snapshot = (label: string) => {
    gc();
    gc();
    const usage = process.memoryUsage();
    process.stdout.write(
      `${kind.padEnd(5)} ${label.padEnd(26)} rss ${mib(usage.rss).padStart(8)}   heap ${mib(usage.heapUsed).padStart(8)} of ${mib(usage.heapTotal).padStart(8)}   external (typed arrays, buffers) ${mib(usage.external).padStart(8)}\n`,
    );
  };
  const store = kind === 'index' ? new NetworkIndex() : new NetworkMap();
  snapshot('empty');
  // CPU time of each slice (this process does nothing else meanwhile), so that a loaded machine's
  // descheduling does not count; the event-loop delay (wall clock) is printed beside it.
  let longestSliceMs = 0;
  let sliceStart = process.cpuUsage();
  const onSlice = () => {
    const used = process.cpuUsage(sliceStart);
    longestSliceMs = Math.max(longestSliceMs, (used.user + used.system) / 1000);
    sliceStart = process.cpuUsage();
  };
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  const started = performance.now();
  for (let p = 0; p < peers; p++) {
    const files = peerFiles(p);
    sliceStart = process.cpuUsage();
    await store.applyFullAsync(
      { peerId: `peer-${p}`, instanceId: 'i', url: `http://10.0.${p >> 8}.${p & 255}:8080`, seq: 1, files },
      { onSlice },
    );
  }
  delay.disable();
  process.stdout.write(
    `${kind.padEnd(5)} loaded ${store.fileCount} files in ${((performance.now() - started) / 1000).toFixed(1)} s (generation included), longest slice ${longestSliceMs.toFixed(1)} ms of process CPU (GC threads included), longest event-loop delay ${(delay.max / 1e6).toFixed(0)} ms wall\n`,
  );
  longestSliceMs = 0;
  snapshot(`${peers} × ${filesPerPeer} files`);
  delay.reset();
  delay.enable();
  const removing = performance.now();
  sliceStart = process.cpuUsage();
  await Promise.all(
    Array.from({ length: peers }, (_, p) =>
      store instanceof NetworkIndex
        ? store.removePeerAsync(`peer-${p}`, undefined, { onSlice })
        : store.removePeerAsync(`peer-${p}`),
    ),
  );
  delay.disable();
  process.stdout.write(
    `${kind.padEnd(5)} removed every peer in ${((performance.now() - removing) / 1000).toFixed(1)} s, longest slice ${longestSliceMs.toFixed(1)} ms of process CPU (GC threads included), longest event-loop delay ${(delay.max / 1e6).toFixed(0)} ms wall\n`,
  );
  snapshot('after every peer left');
}

if (values.store === 'index' || values.store === 'map') {
  await measure(values.store);
} else {
  const self = fileURLToPath(import.meta.url);
  for (const store of ['index', 'map']) {
    await new Promise<void>((resolve, reject) => {
      const args = ['--peers', `${peers}`, '--files', `${filesPerPeer}`, '--names', `${values.names}`];
      const child = fork(self, [...args, '--store', store]);
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${store}: exit ${code}`))));
    });
  }
}
