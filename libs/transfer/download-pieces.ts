import { createHash } from 'node:crypto';
import type { TempFile } from './download-temp.js';
import type { Piece } from './parallel.js';

/** Read size when hashing pieces of the temp file. */
const HASH_READ_BYTES = 4 * 1024 * 1024;

/** A piece of a failed parallel attempt and the SHA-256 of its bytes then: what blame is decided by. */
export interface PieceDigest extends Piece {
  sha256: string;
}

/** The SHA-256 of each piece's bytes as the temp file holds them now, sorted by offset. */
export async function digestPieces(
  file: TempFile,
  pieces: Piece[],
  signal: AbortSignal | undefined,
): Promise<PieceDigest[]> {
  const buffer = Buffer.allocUnsafe(HASH_READ_BYTES);
  const digests: PieceDigest[] = [];
  for (const piece of [...pieces].sort((a, b) => a.start - b.start)) {
    const hash = createHash('sha256');
    for (let at = piece.start; at < piece.end; ) {
      signal?.throwIfAborted();
      const length = Math.min(HASH_READ_BYTES, piece.end - at);
      await file.readExactly(buffer, length, at);
      hash.update(buffer.subarray(0, length));
      at += length;
    }
    digests.push({ ...piece, sha256: hash.digest('hex') });
  }
  return digests;
}

/** Peers that wrote any piece whose bytes differ from what the temp file (now verified) holds there. */
export async function piecesThatDiffer(
  file: TempFile,
  pieces: PieceDigest[],
  signal: AbortSignal | undefined,
): Promise<string[]> {
  const now = await digestPieces(file, pieces, signal);
  const peers = new Set<string>();
  for (const [i, piece] of pieces.entries()) if (now[i]?.sha256 !== piece.sha256) peers.add(piece.peerId);
  return [...peers];
}
