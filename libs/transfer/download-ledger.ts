import { P2PError } from '../errors/index.js';
import type { Log } from '../logging/index.js';
import type { DownloadSource } from './download.js';
import { type DownloadFailure, SourceFailure } from './download-failure.js';

/** The next sequential attempt: the sources to try in order, and the suspect asked alone, if that is it. */
export interface AttemptPlan {
  sources: DownloadSource[];
  solo: string | undefined;
}

/**
 * What a download learned about its sources: every failure in order, the peers proven bad, the suspects
 * (peers that shared an attempt whose bytes did not verify), and from that, whom to ask next.
 *
 * - a peer that alone served a failed attempt is proven bad and not asked again;
 * - peers that shared a failed attempt become suspects: not accused, and only asked again once the other
 *   sources are used up, each alone, so a bad one gets proven and a good one can still deliver.
 */
export class SourceLedger {
  readonly failures: DownloadFailure[] = [];
  readonly bad = new Set<string>();
  readonly suspects = new Set<string>();
  private readonly soloTried = new Set<string>();
  private readonly attemptKinds: Array<'bad-bytes' | 'unreachable'> = [];
  private cleanExhausted = false;

  constructor(
    private readonly sources: DownloadSource[],
    private readonly logger: Log,
  ) {}

  record(source: DownloadSource, failure: SourceFailure, offset: number): void {
    this.failures.push({
      peerId: source.peerId,
      url: source.url,
      code: failure.code,
      message: failure.message,
    });
    this.logger.info('source failed', {
      peerId: source.peerId,
      url: source.url,
      code: failure.code,
      message: failure.message,
      offset,
    });
  }

  /** The next sequential attempt, or undefined when every source worth asking was asked. */
  nextPlan(): AttemptPlan | undefined {
    const clean = this.sources.filter((s) => !this.bad.has(s.peerId) && !this.suspects.has(s.peerId));
    if (!this.cleanExhausted && clean.length > 0) return { sources: clean, solo: undefined };
    const solo = [...this.suspects].find((peerId) => !this.soloTried.has(peerId));
    if (solo === undefined) return undefined;
    this.soloTried.add(solo);
    return { sources: this.sources.filter((s) => s.peerId === solo), solo };
  }

  /** An attempt in which the sources could not deliver every byte. */
  unreachable(plan: AttemptPlan | undefined): void {
    this.attemptKinds.push('unreachable');
    if (plan !== undefined && plan.solo === undefined) this.cleanExhausted = true;
  }

  /** Bytes of a failed attempt: its only contributor is proven bad, several become suspects. */
  blame(plan: DownloadSource[], contributors: string[], digest: string, proven: boolean): void {
    this.attemptKinds.push('bad-bytes');
    this.logger.warn('bytes did not verify', { got: digest, peers: contributors, proven });
    for (const peerId of contributors) {
      const source = plan.find((s) => s.peerId === peerId) ?? { peerId, url: '' };
      this.record(
        source,
        new SourceFailure('HASH_MISMATCH', `served bytes of an attempt hashing to ${digest}`),
        0,
      );
      if (proven) this.convict(peerId);
      else this.suspects.add(peerId);
    }
  }

  convict(peerId: string): void {
    this.bad.add(peerId);
    this.suspects.delete(peerId);
  }

  /** The error once nothing is left to try. */
  finalError(sha256: string, size: number): P2PError {
    const allBad = this.attemptKinds.length > 0 && this.attemptKinds.every((kind) => kind === 'bad-bytes');
    const details = {
      sha256,
      size,
      failures: this.failures,
      badSources: [...this.bad],
      suspects: [...this.suspects],
    };
    if (allBad)
      return new P2PError('HASH_MISMATCH', `no source delivered bytes matching sha256 ${sha256}`, {
        details,
      });
    const peers = new Set(this.sources.map((s) => s.peerId)).size;
    return new P2PError(
      'DOWNLOAD_FAILED',
      `could not download the file from ${peers} source(s)${this.why()}`,
      {
        details,
      },
    );
  }

  /** The last failure of each peer, as a person would want it summed up. */
  private why(): string {
    const last = new Map<string, DownloadFailure>();
    for (const failure of this.failures) last.set(failure.peerId, failure);
    const codes = [...last.values()].map((f) => f.code);
    if (codes.length === 0) return '';
    if (codes.every((code) => code === 'BUSY')) return ': every source is busy (HTTP 503); try again later';
    const busy = codes.filter((code) => code === 'BUSY').length;
    const counts = new Map<string, number>();
    for (const code of codes) counts.set(code, (counts.get(code) ?? 0) + 1);
    const summary = [...counts].map(([code, n]) => `${n} ${code === 'BUSY' ? 'busy' : code}`).join(', ');
    return busy > 0 ? `: ${summary} (busy sources answered HTTP 503)` : `: ${summary}`;
  }
}
