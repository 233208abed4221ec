import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { isP2PError } from '../../libs/errors/index.js';
import { loadOrCreateIdentity, signBody, verifyBody } from '../../libs/identity/index.js';
import { peerIdFromPublicKey } from '../../libs/protocol/index.js';

const tempDirs: string[] = [];

after(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'p2p-identity-test-'));
  tempDirs.push(dir);
  return dir;
}

async function put(root: string, name: string, content: string): Promise<void> {
  const file = path.join(root, ...name.split('/'));
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
}

describe('peer identity', () => {
  it('is created once, stored with mode 0600, and stable across loads', async () => {
    const dir = await tempDir();
    const first = await loadOrCreateIdentity(dir);
    assert.match(first.peerId, /^[0-9a-f]{40}$/);
    assert.equal(first.peerId, peerIdFromPublicKey(first.publicKeyDer), 'the id is the key’s');
    assert.equal(first.name, `peer-${first.peerId.slice(0, 8)}`);
    const second = await loadOrCreateIdentity(dir);
    assert.equal(second.peerId, first.peerId);
    assert.equal(second.publicKeyDer, first.publicKeyDer);
    const file = path.join(dir, '.p2p', 'identity.json');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    // Another share directory is another peer.
    const other = await loadOrCreateIdentity(await tempDir());
    assert.notEqual(other.peerId, first.peerId);
    assert.notEqual(other.publicKeyDer, first.publicKeyDer);
  });

  it('concurrent first loads agree on one identity', async () => {
    const dir = await tempDir();
    const loaded = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateIdentity(dir)));
    for (const identity of loaded) {
      assert.equal(identity.peerId, loaded[0]!.peerId);
      assert.equal(identity.publicKeyDer, loaded[0]!.publicKeyDer);
    }
  });

  it('respects and stores a name, keeping the key and so the id', async () => {
    const dir = await tempDir();
    const generated = await loadOrCreateIdentity(dir);
    const named = await loadOrCreateIdentity(dir, 'alice');
    assert.equal(named.name, 'alice');
    assert.equal(named.peerId, generated.peerId);
    assert.equal(named.publicKeyDer, generated.publicKeyDer);
    assert.equal((await loadOrCreateIdentity(dir)).name, 'alice');

    const fresh = await loadOrCreateIdentity(await tempDir(), 'bob-2');
    assert.equal(fresh.name, 'bob-2');
    assert.notEqual(fresh.peerId, generated.peerId);

    await assert.rejects(loadOrCreateIdentity(dir, '../evil'), (err) => isP2PError(err, 'CONFIG_INVALID'));
  });

  it('reads a file written before ids were derived: the key stays, the old id becomes the name', async () => {
    const dir = await tempDir();
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const legacy = {
      version: 1,
      peerId: 'peer1',
      privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    };
    await put(dir, '.p2p/identity.json', JSON.stringify(legacy));
    const loaded = await loadOrCreateIdentity(dir);
    const der = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    assert.equal(loaded.publicKeyDer, der);
    assert.equal(loaded.peerId, peerIdFromPublicKey(der));
    assert.equal(loaded.name, 'peer1');
    // Renaming rewrites the file in the current format, with the same key.
    const renamed = await loadOrCreateIdentity(dir, 'peer-one');
    assert.equal(renamed.peerId, loaded.peerId);
    const stored = JSON.parse(await readFile(path.join(dir, '.p2p', 'identity.json'), 'utf8'));
    assert.equal(stored.version, 2);
    assert.equal(stored.name, 'peer-one');
    assert.equal(stored.peerId, undefined, 'the id is never stored: it is the key’s');
  });

  it('refuses a corrupt identity file instead of silently replacing it', async () => {
    const dir = await tempDir();
    await put(dir, '.p2p/identity.json', 'not json');
    await assert.rejects(loadOrCreateIdentity(dir), (err) => isP2PError(err, 'CONFIG_INVALID'));
    assert.equal(await readFile(path.join(dir, '.p2p', 'identity.json'), 'utf8'), 'not json');
  });

  it('signs and verifies, and detects tampering and malformed input', async () => {
    const identity = await loadOrCreateIdentity(await tempDir());
    const body = Buffer.from(JSON.stringify({ v: 1, type: 'peer.announce', files: [] }));
    const signature = signBody(identity.privateKey, body);
    assert.equal(verifyBody(identity.publicKeyDer, body, signature), true);

    const tampered = Buffer.from(body);
    tampered[5] = (tampered[5]! + 1) % 256;
    assert.equal(verifyBody(identity.publicKeyDer, tampered, signature), false);

    const badSig = Buffer.from(signature, 'base64');
    badSig[0] = (badSig[0]! + 1) % 256;
    assert.equal(verifyBody(identity.publicKeyDer, body, badSig.toString('base64')), false);

    const otherKey = (await loadOrCreateIdentity(await tempDir())).publicKeyDer;
    assert.equal(verifyBody(otherKey, body, signature), false);

    for (const [key, sig] of [
      ['', signature],
      ['not base64 !!', signature],
      [Buffer.from('garbage').toString('base64'), signature],
      [identity.publicKeyDer, ''],
      [identity.publicKeyDer, 'AAAA'],
      [identity.publicKeyDer, `${signature}junk`],
      [identity.publicKeyDer, undefined as unknown as string],
      [null as unknown as string, signature],
    ] as [string, string][]) {
      assert.equal(verifyBody(key, body, sig), false);
    }
    assert.equal(verifyBody(identity.publicKeyDer, 'text' as unknown as Buffer, signature), false);
  });

  it('verifies with an Ed25519 key however it is imported, and with no other kind of key', () => {
    const body = Buffer.from('{"v":1}');
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const der = publicKey.export({ type: 'spki', format: 'der' });
    const signature = signBody(privateKey, body);
    assert.equal(verifyBody(der.toString('base64'), body, signature), true);
    // The same key, imported as DER by Node itself, agrees.
    assert.equal(
      verify(
        null,
        body,
        createPublicKey({ key: der, format: 'der', type: 'spki' }),
        Buffer.from(signature, 'base64'),
      ),
      true,
    );
    // The prefix with a byte more or less is not an Ed25519 key.
    assert.equal(
      verifyBody(Buffer.concat([der, Buffer.from([0])]).toString('base64'), body, signature),
      false,
    );
    assert.equal(verifyBody(der.subarray(0, der.length - 1).toString('base64'), body, signature), false);
    // Other kinds of keys, well-formed SPKI, are refused.
    for (const other of [generateKeyPairSync('x25519').publicKey, generateKeyPairSync('ed448').publicKey]) {
      const otherDer = other.export({ type: 'spki', format: 'der' });
      assert.equal(verifyBody(otherDer.toString('base64'), body, signature), false, other.asymmetricKeyType);
    }
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ecSignature = sign('sha256', body, ec.privateKey).toString('base64');
    assert.equal(
      verifyBody(ec.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'), body, ecSignature),
      false,
    );
  });
});
