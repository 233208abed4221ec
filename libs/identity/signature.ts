import { createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { ed25519PublicKeyBytes } from '../protocol/index.js';

/** Ed25519 signature (base64) of `body`. */
export function signBody(privateKey: KeyObject, body: Buffer): string {
  return sign(null, body, privateKey).toString('base64');
}

const ED25519_SIGNATURE_BYTES = 64;
/** Bytes of the DER (SPKI) prefix of an Ed25519 public key, before its 32 raw bytes. */
const ED25519_SPKI_PREFIX_BYTES = 12;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Public keys imported recently, by their base64 DER: importing one costs more than the check itself. */
const publicKeyCache = new Map<string, KeyObject>();
/** Keys kept at once (a network's worth of peers); the least recently used goes first. */
const PUBLIC_KEY_CACHE_SIZE = 20_000;

/**
 * The Ed25519 key of a canonical base64 SPKI DER (the form announces carry and identity files keep),
 * imported once and then served from a bounded LRU cache; undefined for anything else (another kind of
 * key, another length, trailing bytes, a point of small order: see `ed25519PublicKeyBytes`). An Ed25519 SPKI is a fixed prefix and the raw key: imported as a
 * JWK of those 32 bytes it is the same key, at a fifth of the cost of OpenSSL's DER decoder.
 */
function importPublicKey(publicKeyDer: string): KeyObject | undefined {
  const cached = publicKeyCache.get(publicKeyDer);
  if (cached) {
    publicKeyCache.delete(publicKeyDer);
    publicKeyCache.set(publicKeyDer, cached);
    return cached;
  }
  const der = ed25519PublicKeyBytes(publicKeyDer);
  if (der === undefined) return undefined;
  const x = der.subarray(ED25519_SPKI_PREFIX_BYTES).toString('base64url');
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  if (publicKeyCache.size >= PUBLIC_KEY_CACHE_SIZE) {
    const oldest = publicKeyCache.keys().next().value;
    if (oldest !== undefined) publicKeyCache.delete(oldest);
  }
  publicKeyCache.set(publicKeyDer, key);
  return key;
}

/**
 * Checks an Ed25519 signature made by `signBody` with the key `publicKeyDer` (canonical base64 of its SPKI
 * DER). Never throws: false on any malformed input.
 */
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
    if (publicKey?.asymmetricKeyType !== 'ed25519') return false;
    return verify(null, body, publicKey, signature);
  } catch {
    return false;
  }
}
