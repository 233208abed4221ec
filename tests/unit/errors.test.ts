import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { describeError, isP2PError, P2PError, redactCredentials } from '../../libs/errors/index.js';

test('redactCredentials hides the password of every URL in a text and keeps the rest', () => {
  assert.equal(
    redactCredentials('amqp://guest:s3cret@rabbit:5672/vhost'),
    'amqp://guest:***@rabbit:5672/vhost',
  );
  assert.equal(
    redactCredentials('from amqps://a:b@h1/ to amqp://c:p%40ss@h2:1'),
    'from amqps://a:***@h1/ to amqp://c:***@h2:1',
  );
  assert.equal(redactCredentials('amqp://:only-password@h'), 'amqp://:***@h');
  for (const plain of ['amqp://rabbit:5672', 'amqp://user@rabbit', 'not a url: a:b@c']) {
    assert.equal(redactCredentials(plain), plain);
  }
});

test('errors carry a stable code, and describeError gives one line whatever was thrown', () => {
  const err = new P2PError('RPC_TIMEOUT', 'nobody answered', { details: { queue: 'q' } });
  assert.ok(isP2PError(err, 'RPC_TIMEOUT'));
  assert.ok(!isP2PError(err, 'RPC_ERROR'));
  assert.equal(describeError(err), 'RPC_TIMEOUT: nobody answered');
  assert.equal(describeError(new Error('plain')), 'plain');
  assert.equal(describeError('text'), 'text');
});

test('an error made by another copy of the errors module is a P2PError too (the bundled CLI and the services)', async () => {
  const other = (await import(
    new URL('../../libs/errors/index.js?another-copy', import.meta.url).href
  )) as typeof import('../../libs/errors/index.js');
  assert.notEqual(other.P2PError, P2PError, 'a second copy of the class');
  const theirs = new other.P2PError('CONFIG_INVALID', 'LOG_LEVEL: must be one of …');
  assert.ok(theirs instanceof P2PError);
  assert.ok(isP2PError(theirs, 'CONFIG_INVALID'));
  assert.ok(new P2PError('USAGE', 'x') instanceof other.P2PError);
  assert.ok(!(new Error('plain') instanceof P2PError));
  assert.ok(!isP2PError({ code: 'CONFIG_INVALID', message: 'lookalike' }));
});

test("the P2PError brand stays on the class: a copy of an error's fields is none, inspect does not print it", () => {
  const err = new P2PError('NO_SOURCES', 'no peer has it', { details: { peers: 0 } });
  // What the logger and callers make of an error: its own fields, copied.
  assert.ok(!({ ...err } instanceof P2PError), 'a spread copy');
  assert.ok(!isP2PError(Object.assign({}, err)), 'an assigned copy');
  assert.doesNotMatch(inspect(err), /p2p-rabbit|Symbol/);
  assert.doesNotMatch(inspect({ ...err }), /p2p-rabbit|Symbol/);
  // A subclass is told apart as usual: not every P2PError is one of it.
  class Narrow extends P2PError {}
  assert.ok(!(err instanceof Narrow));
  assert.ok(new Narrow('USAGE', 'x') instanceof Narrow);
  assert.ok(new Narrow('USAGE', 'x') instanceof P2PError);
});
