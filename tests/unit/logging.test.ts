import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { promisify, stripVTControlCharacters } from 'node:util';
import { isP2PError, P2PError } from '../../libs/errors/index.js';
import {
  childLog,
  createLazyLogger,
  createLogger,
  type Log,
  type LoggerOptions,
  NPM_LEVELS,
  silentLog,
} from '../../libs/logging/index.js';

const LINE_TIMEOUT_MS = 2000;

/** Lines written to a PassThrough, awaited one by one with a deadline. */
function capture() {
  const stream = new PassThrough();
  stream.setEncoding('utf8');
  const lines: string[] = [];
  let partial = '';
  let wake: (() => void) | undefined;
  stream.on('data', (chunk: string) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    wake?.();
  });
  return {
    stream,
    async next(): Promise<string> {
      const deadline = Date.now() + LINE_TIMEOUT_MS;
      while (lines.length === 0) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error('no log line written');
        await new Promise<void>((resolveWait) => {
          const timer = setTimeout(resolveWait, left);
          wake = () => {
            clearTimeout(timer);
            resolveWait();
          };
        });
        wake = undefined;
      }
      return lines.shift()!;
    },
  };
}

function jsonLogger(extra: Partial<LoggerOptions> = {}) {
  const out = capture();
  const logger = createLogger({
    service: 'peer',
    level: 'info',
    format: 'json',
    defaultMeta: { peerId: 'peer-1' },
    stream: out.stream,
    ...extra,
  });
  return { logger, next: async () => JSON.parse(await out.next()) as Record<string, unknown> };
}

describe('JSON lines', () => {
  test('carry service, defaultMeta, level, message and an ISO timestamp', async () => {
    const { logger, next } = jsonLogger();
    logger.info('hello', { files: 3 });
    const line = await next();
    assert.equal(line.service, 'peer');
    assert.equal(line.peerId, 'peer-1');
    assert.equal(line.level, 'info');
    assert.equal(line.message, 'hello');
    assert.equal(line.files, 3);
    assert.ok(!Number.isNaN(Date.parse(String(line.timestamp))), String(line.timestamp));
  });

  test('a child adds its correlationId to every line', async () => {
    const { logger, next } = jsonLogger({ service: 'superpeer', defaultMeta: { superpeerId: 'sp-1' } });
    const child = logger.child({ correlationId: 'c-42' });
    child.warn('slow reply');
    child.info('done');
    for (const message of ['slow reply', 'done']) {
      const line = await next();
      assert.equal(line.message, message);
      assert.equal(line.service, 'superpeer');
      assert.equal(line.superpeerId, 'sp-1');
      assert.equal(line.correlationId, 'c-42');
    }
  });

  test('an error in meta keeps its message, code and stack', async () => {
    const { logger, next } = jsonLogger();
    const cause = new Error('socket hang up');
    logger.child({ correlationId: 'c-1' }).error('download failed', {
      err: new P2PError('HASH_MISMATCH', 'sha256 differs', { cause, details: { name: 'a.txt' } }),
    });
    const line = await next();
    assert.equal(line.message, 'download failed');
    assert.equal(line.correlationId, 'c-1');
    const err = line.err as Record<string, unknown>;
    assert.equal(err.code, 'HASH_MISMATCH');
    assert.equal(err.message, 'sha256 differs');
    assert.equal(err.name, 'P2PError');
    assert.deepEqual(err.details, { name: 'a.txt' });
    assert.match(String(err.stack), /sha256 differs/);
    assert.equal((err.cause as Record<string, unknown>).message, 'socket hang up');
  });

  test('an error passed as the message or as meta keeps its message and code', async () => {
    const { logger, next } = jsonLogger();
    logger.error(new P2PError('RPC_TIMEOUT', 'no reply in 3000 ms'));
    const first = await next();
    assert.equal(first.message, 'no reply in 3000 ms');
    assert.equal(first.code, 'RPC_TIMEOUT');
    assert.equal(first.service, 'peer');
    assert.match(String(first.stack), /no reply/);

    logger.error('search failed:', new P2PError('SUPERPEER_UNAVAILABLE', 'nobody answers'));
    const second = await next();
    assert.match(String(second.message), /nobody answers/);
    assert.equal(second.code, 'SUPERPEER_UNAVAILABLE');
  });

  test('lines below the level are dropped', async () => {
    const { logger, next } = jsonLogger({ level: 'warn' });
    logger.info('not shown');
    logger.debug('not shown either');
    logger.warn('shown');
    assert.equal((await next()).message, 'shown');
  });

  test('auto format writes JSON when the stream is not a TTY', async () => {
    const { logger, next } = jsonLogger({ format: 'auto', isTty: false });
    logger.info('machine readable');
    assert.equal((await next()).message, 'machine readable');
  });
});

describe('module loggers', () => {
  test('childLog names the module on every line of a winston logger, in JSON and in pretty lines', async () => {
    const { logger, next } = jsonLogger();
    const share = childLog(logger, 'share');
    share.warn('could not save hash cache', { file: 'x' });
    childLog(share, 'scanner').info('walked');
    const first = await next();
    assert.deepEqual(
      [first.module, first.message, first.file, first.peerId],
      ['share', 'could not save hash cache', 'x', 'peer-1'],
    );
    assert.equal((await next()).module, 'scanner', 'the innermost name wins');

    const out = capture();
    const pretty = createLogger({
      service: 'peer',
      level: 'info',
      format: 'pretty',
      isTty: false,
      stream: out.stream,
    });
    childLog(pretty, 'share').info('ready', { files: 2 });
    assert.match(await out.next(), /^\S+ info \[peer\] share: ready \{ files: 2 \}$/);
  });

  test('childLog adds the module to the meta of a plain Log, and silence stays silent', () => {
    const lines: Array<[string, string, object | undefined]> = [];
    const plain: Log = {
      error: (message, meta) => lines.push(['error', message, meta]),
      warn: (message, meta) => lines.push(['warn', message, meta]),
      info: (message, meta) => lines.push(['info', message, meta]),
      debug: (message, meta) => lines.push(['debug', message, meta]),
    };
    const watch = childLog(plain, 'watch');
    watch.warn('refused', { code: 'X' });
    watch.debug('seen');
    assert.deepEqual(lines, [
      ['warn', 'refused', { module: 'watch', code: 'X' }],
      ['debug', 'seen', { module: 'watch' }],
    ]);
    assert.equal(childLog(silentLog, 'share'), silentLog);
  });
});

describe('pretty lines', () => {
  test('on a TTY: colorized `time level [service peerId] message {meta}`', async () => {
    const out = capture();
    const logger = createLogger({
      service: 'peer',
      level: 'info',
      format: 'auto',
      isTty: true,
      defaultMeta: { peerId: 'peer-1' },
      stream: out.stream,
    });
    logger.child({ correlationId: 'c-7' }).info('announced', { files: 2 });
    const raw = await out.next();
    assert.notEqual(raw, stripVTControlCharacters(raw), 'colorized');
    const line = stripVTControlCharacters(raw);
    assert.match(line, /^\d\d:\d\d:\d\d\.\d{3} info \[peer peer-1\] announced \{.*\}$/);
    assert.match(line, /correlationId: 'c-7'/);
    assert.match(line, /files: 2/);
  });

  test('format pretty off a TTY has no color codes, and an error shows its code', async () => {
    const out = capture();
    const logger = createLogger({
      service: 'cli',
      level: 'info',
      format: 'pretty',
      isTty: false,
      stream: out.stream,
    });
    logger.warn('gave up', { err: new P2PError('NO_SOURCES', 'no peer has it') });
    const line = await out.next();
    assert.equal(line, stripVTControlCharacters(line));
    assert.match(line, /^\S+ warn \[cli\] gave up /);
    assert.match(line, /NO_SOURCES/);
    assert.match(line, /no peer has it/);
    // The class's brand (libs/errors) is not one of the error's fields.
    assert.doesNotMatch(line, /Symbol|p2p-rabbit/);
  });
});

test('an unknown level is CONFIG_INVALID', () => {
  assert.throws(
    () => createLogger({ service: 'peer', level: 'loud', format: 'json', stream: new PassThrough() }),
    (err: unknown) => isP2PError(err, 'CONFIG_INVALID'),
  );
});

describe('lazy loggers (the CLI)', () => {
  test('the levels known without winston are its npm levels', () => {
    const winston = createRequire(import.meta.url)('winston') as { config: { npm: { levels: object } } };
    assert.deepEqual(NPM_LEVELS, winston.config.npm.levels);
  });

  test('lines at the level go out as a logger of those options writes them, children included', async () => {
    const out = capture();
    const logger = createLazyLogger({ service: 'cli', level: 'warn', format: 'json', stream: out.stream });
    logger.info('dropped');
    logger.child({ correlationId: 'c-1' }).child({ module: 'get' }).warn('kept', { files: 2 });
    const line = JSON.parse(await out.next()) as Record<string, unknown>;
    assert.equal(line.message, 'kept');
    assert.equal(line.level, 'warn');
    assert.equal(line.service, 'cli');
    assert.equal(line.correlationId, 'c-1');
    assert.equal(line.module, 'get');
    assert.equal(line.files, 2);
  });

  test('a line without meta is written as the logger of those options writes it: its text verbatim', async () => {
    // winston runs a message given more arguments through util.format (its splat format): a `%d` in a
    // file name would become NaN, a `%s` the word undefined.
    const message = 'cannot read /share/100%done %s %d.txt';
    const lines: string[] = [];
    for (const make of [createLogger, createLazyLogger]) {
      const out = capture();
      make({ service: 'cli', level: 'warn', format: 'json', stream: out.stream }).error(message);
      lines.push((JSON.parse(await out.next()) as { message: string }).message);
    }
    assert.deepEqual(lines, [message, message]);
  });

  test('an unknown level is CONFIG_INVALID at once', () => {
    assert.throws(
      () => createLazyLogger({ service: 'cli', level: 'loud', format: 'json', stream: new PassThrough() }),
      (err: unknown) => isP2PError(err, 'CONFIG_INVALID'),
    );
  });

  test('winston is loaded only once a line at the level is logged', async () => {
    // In a process of its own: this one has winston loaded already.
    const logging = new URL('../../libs/logging/index.js', import.meta.url).href;
    const script = `
      import { createRequire } from 'node:module';
      import { PassThrough } from 'node:stream';
      const { createLazyLogger } = await import(${JSON.stringify(logging)});
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes('/winston/'));
      const logger = createLazyLogger({ service: 'cli', level: 'error', format: 'json', stream: new PassThrough() });
      logger.warn('below the level');
      logger.child({ module: 'x' }).debug('below the level');
      const before = loaded();
      logger.error('at the level');
      console.log(JSON.stringify({ before, after: loaded() }));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
    assert.deepEqual(JSON.parse(stdout), { before: false, after: true });
  });
});
