import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { chmod, link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { P2PError } from '../errors/index.js';
import { makeDirs } from '../fs/index.js';
import { NodeNameSchema, peerIdFromPublicKey } from '../protocol/index.js';

export interface PeerIdentity {
  /** Derived from the public key (see `peerIdFromPublicKey`): nobody without the private key can use it. */
  peerId: string;
  /** Display name (`PEER_NAME`, or the id of an identity file written before ids were derived). */
  name: string;
  /** Ed25519 public key, DER (SPKI) in base64: what the peer publishes in its announce. */
  publicKeyDer: string;
  privateKey: KeyObject;
}

/**
 * Folder inside a peer's directory where it keeps its private state (this identity, the share's hash cache);
 * a dot segment, so it is never shared.
 */
export const STATE_DIR_NAME = '.p2p';
export const IDENTITY_FILE_NAME = 'identity.json';
const IDENTITY_VERSION = 2;

/** Files written before ids were derived from keys: their free-form id becomes the display name. */
const IdentityFileV1Schema = z.object({
  version: z.literal(1),
  peerId: NodeNameSchema,
  privateKeyPem: z.string().min(1),
});
const IdentityFileV2Schema = z.object({
  version: z.literal(IDENTITY_VERSION),
  name: NodeNameSchema.optional(),
  privateKeyPem: z.string().min(1),
});
const IdentityFileSchema = z.union([IdentityFileV1Schema, IdentityFileV2Schema]).transform(
  (file): IdentityFile => ({
    version: IDENTITY_VERSION,
    privateKeyPem: file.privateKeyPem,
    ...(file.version === 1 ? { name: file.peerId } : file.name !== undefined ? { name: file.name } : {}),
  }),
);
type IdentityFile = z.infer<typeof IdentityFileV2Schema>;

function identityPath(dir: string): string {
  return path.join(path.resolve(dir), STATE_DIR_NAME, IDENTITY_FILE_NAME);
}

/**
 * Reads `<dir>/.p2p/identity.json` or creates it (mode 0600) with a new Ed25519 key pair (private key PEM in
 * the file). The peer id is derived from the public key, never stored: an existing file keeps its key, so
 * the peer keeps its id. `nameOverride` (PEER_NAME) is stored as the display name; without one the name is
 * the stored one, else `peer-` and the id's first 8 digits. A file that exists but cannot be understood is
 * an error (CONFIG_INVALID), not silently replaced: replacing it would quietly turn this peer into another.
 */
export async function loadOrCreateIdentity(dir: string, nameOverride?: string): Promise<PeerIdentity> {
  if (nameOverride !== undefined && !NodeNameSchema.safeParse(nameOverride).success) {
    throw new P2PError('CONFIG_INVALID', `peer name ${JSON.stringify(nameOverride)} is not a valid name`, {
      details: { nameOverride },
    });
  }
  const file = identityPath(dir);
  await ioStep(file, async () => makeDirs(path.dirname(file), 0o700));

  let stored = await readIdentityFile(file);
  if (stored === undefined) {
    const { privateKey } = generateKeyPairSync('ed25519');
    const created: IdentityFile = {
      version: IDENTITY_VERSION,
      ...(nameOverride !== undefined ? { name: nameOverride } : {}),
      privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    };
    // link() refuses to replace an existing file: if another process created one meanwhile, theirs wins
    // and we read it back, so both end up with the same identity.
    const won = await writeAtomically(file, created, false);
    stored = won ? created : await readIdentityFile(file);
    if (stored === undefined) {
      throw new P2PError('IO_ERROR', `identity file ${file} vanished while being created`, {
        details: { file },
      });
    }
  }
  if (nameOverride !== undefined && stored.name !== nameOverride) {
    stored = { ...stored, name: nameOverride };
    await writeAtomically(file, stored, true);
  }

  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(stored.privateKeyPem);
  } catch (err) {
    throw invalidFile(file, 'its private key cannot be parsed', err);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw invalidFile(file, 'its key is not an Ed25519 key');
  const publicKeyDer = createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).toString('base64');
  const peerId = peerIdFromPublicKey(publicKeyDer);
  if (peerId === undefined) throw invalidFile(file, 'its public key has an unexpected form');
  return { peerId, name: stored.name ?? `peer-${peerId.slice(0, 8)}`, publicKeyDer, privateKey };
}

async function readIdentityFile(file: string): Promise<IdentityFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new P2PError('IO_ERROR', `cannot read identity file ${file}: ${(err as Error).message}`, {
      cause: err,
      details: { file },
    });
  }
  try {
    return IdentityFileSchema.parse(JSON.parse(text));
  } catch (err) {
    throw invalidFile(file, 'it is not a valid identity file', err);
  }
}

/** Temp file (0600) then link (create only) or rename (replace), so readers never see half a file. */
async function writeAtomically(file: string, content: IdentityFile, replace: boolean): Promise<boolean> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await ioStep(file, async () => {
      await writeFile(tmp, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
      // writeFile's mode is filtered by the umask; the key must not be readable by others whatever it is.
      await chmod(tmp, 0o600);
    });
    if (replace) {
      await ioStep(file, () => rename(tmp, file));
      return true;
    }
    try {
      await link(tmp, file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw ioError(file, err);
    }
  } finally {
    await rm(tmp, { force: true }).catch(() => undefined);
  }
}

async function ioStep<T>(file: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw ioError(file, err);
  }
}

function ioError(file: string, err: unknown): P2PError {
  return new P2PError('IO_ERROR', `cannot write identity file ${file}: ${(err as Error).message}`, {
    cause: err,
    details: { file },
  });
}

function invalidFile(file: string, why: string, cause?: unknown): P2PError {
  return new P2PError(
    'CONFIG_INVALID',
    `identity file ${file} is unusable (${why}); move it away to create a new identity`,
    { cause, details: { file } },
  );
}
