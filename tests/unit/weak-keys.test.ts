import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { test } from 'node:test';
import { verifyBody } from '../../libs/identity/index.js';
import { PublicKeySchema, peerIdFromPublicKey } from '../../libs/protocol/index.js';

/*
 * Ed25519 public keys of small order (and non-canonical encodings of a point): for them one fixed signature,
 * R = the identity point and S = 0, verifies a large share of all bodies (all of them for the identity),
 * so the peer id derived from such a key is one anyone can speak for. RFC 8032 verification as OpenSSL does
 * it accepts them; the protocol must not.
 */

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
/** The small-order points (libsodium's list), and p, p + 1: y = 0 and y = 1 written non-canonically. */
const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];
const UNIVERSAL_SIGNATURE = Buffer.concat([Buffer.from(SMALL_ORDER[1]!, 'hex'), Buffer.alloc(32)]).toString(
  'base64',
);

/** Every encoding of those points, with the sign bit of x clear and set. */
const weakKeys = SMALL_ORDER.flatMap((hex) =>
  [0, 0x80].map((signBit) => {
    const raw = Buffer.from(hex, 'hex');
    raw[31]! |= signBit;
    return Buffer.concat([SPKI_PREFIX, raw]).toString('base64');
  }),
);

test('a small-order Ed25519 key verifies no signature and is no valid announce key', () => {
  const bodies = Array.from({ length: 64 }, (_, i) => Buffer.from(`{"n":${i}}`));
  for (const key of weakKeys) {
    const accepted = bodies.filter((body) => verifyBody(key, body, UNIVERSAL_SIGNATURE)).length;
    assert.equal(accepted, 0, `${key}: the universal signature verified ${accepted} of 64 bodies`);
    assert.equal(PublicKeySchema.safeParse(key).success, false, key);
    assert.equal(peerIdFromPublicKey(key), undefined, key);
  }
});

test('a non-canonical y (p <= y < 2^255) is refused; real keys still verify and are valid', () => {
  const raw = Buffer.from('efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'hex'); // p + 2
  assert.equal(
    PublicKeySchema.safeParse(Buffer.concat([SPKI_PREFIX, raw]).toString('base64')).success,
    false,
  );
  for (let i = 0; i < 20; i++) {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const key = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const body = Buffer.from(`body ${i}`);
    assert.equal(verifyBody(key, body, sign(null, body, privateKey).toString('base64')), true);
    assert.equal(PublicKeySchema.safeParse(key).success, true);
    assert.match(peerIdFromPublicKey(key) ?? '', /^[0-9a-f]{40}$/);
  }
});
