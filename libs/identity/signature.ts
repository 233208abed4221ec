import { createPublicKey, type KeyObject, sign, verify } from 'node:crypto';

/** Ed25519 signature (base64) of `body`. */
export function signBody(privateKey: KeyObject, body: Buffer): string {
  return sign(null, body, privateKey).toString('base64');
}

const ED25519_SIGNATURE_BYTES = 64;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Public keys imported recently, by their base64 DER: importing one costs more than the check itself. */
const publicKeyCache = new Map<string, KeyObject>();
/** Keys kept at once (a network's worth of peers); the least recently used goes first. */
const PUBLIC_KEY_CACHE_SIZE = 20_000;

/** The key for a canonical base64 SPKI DER, imported once and then served from a bounded LRU cache. */
function importPublicKey(publicKeyDer: string): KeyObject {
  const cached = publicKeyCache.get(publicKeyDer);
  if (cached) {
    publicKeyCache.delete(publicKeyDer);
    publicKeyCache.set(publicKeyDer, cached);
    return cached;
  }
  const key = createPublicKey({ key: Buffer.from(publicKeyDer, 'base64'), format: 'der', type: 'spki' });
  if (publicKeyCache.size >= PUBLIC_KEY_CACHE_SIZE) {
    const oldest = publicKeyCache.keys().next().value;
    if (oldest !== undefined) publicKeyCache.delete(oldest);
  }
  publicKeyCache.set(publicKeyDer, key);
  return key;
}

/** Checks an Ed25519 signature made by `signBody`. Never throws: false on any malformed input. */
export function verifyBody(publicKeyDer: string, body: Buffer, signatureB64: string): boolean {
  try {
    if (typeof publicKeyDer !== 'string' || typeof signatureB64 !== 'string' || !Buffer.isBuffer(body)) {
      return false;
    }
    // Buffer.from(…, 'base64') skips junk characters; insist on the canonical form instead.
    if (!BASE64.test(publicKeyDer) || !BASE64.test(signatureB64)) return false;
    const signature = Buffer.from(signatureB64, 'base64');
    if (signature.length !== ED25519_SIGNATURE_BYTES || signature.toString('base64') !== signatureB64)
      return false;
    const publicKey = importPublicKey(publicKeyDer);
    if (publicKey.asymmetricKeyType !== 'ed25519') return false;
    return verify(null, body, publicKey, signature);
  } catch {
    return false;
  }
}
