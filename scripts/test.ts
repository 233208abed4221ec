/**
 * `npm test`'s runner: resolves the broker ONCE for the whole run (node --test runs each file in its own
 * process), hands it to the test processes through the environment, runs `node --test <args>`, and removes
 * a broker it started, also on Ctrl-C or SIGTERM. Usage: node dist/scripts/test.js <node --test args…>
 *
 * AMQP_URL set, or a broker at the default address: used as is. Otherwise a RabbitMQ container for this run
 * (scripts/support/broker.ts). Neither a broker nor Docker: one line saying how to get one, exit status 2.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { brokerEnv, type ResolvedBroker, removeContainer, resolveTestBroker } from './support/broker.js';

const say = (line: string) => process.stderr.write(`test: ${line}\n`);

let broker: ResolvedBroker | undefined;
let teardown: Promise<void> | undefined;
function removeBroker(): Promise<void> {
  if (broker?.kind !== 'container') return Promise.resolve();
  const { id } = broker.container;
  teardown ??= removeContainer(id).then(() => {
    say(`removed RabbitMQ container ${id.slice(0, 12)}`);
  });
  return teardown;
}

// Until the tests start, a signal means: remove what was started, then go.
let child: ReturnType<typeof spawn> | undefined;
let signalled: NodeJS.Signals | undefined;
const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
for (const signal of signals) {
  process.on(signal, () => {
    signalled ??= signal;
    if (child && child.exitCode === null) {
      // A terminal's Ctrl-C reaches the whole process group already; SIGTERM/SIGHUP reach only us.
      if (signal !== 'SIGINT') child.kill(signal);
      return; // the child's exit runs the teardown
    }
    void removeBroker().finally(() => process.exit(128 + os.constants.signals[signal]));
  });
}

try {
  const started = Date.now();
  broker = await resolveTestBroker();
  if (broker.kind !== 'container') {
    say(
      `using RabbitMQ at ${broker.amqpUrl.replace(/^amqp(s?):\/\/[^@/]*@/, 'amqp$1://')} (${broker.kind === 'given' ? 'AMQP_URL' : 'the default address'})`,
    );
  } else {
    say(
      `no RabbitMQ at the default address: started ${broker.container.image} in container ${broker.container.id.slice(0, 12)} (${broker.amqpUrl}, management ${broker.container.managementUrl}) in ${Date.now() - started} ms`,
    );
  }
} catch (err) {
  say(err instanceof Error ? err.message : String(err));
  await removeBroker();
  process.exit(2);
}
if (signalled) {
  await removeBroker();
  process.exit(128 + os.constants.signals[signalled]);
}

child = spawn(process.execPath, ['--test', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, ...brokerEnv(broker) },
});
// A test run that does not end after a signal is stopped hard, so the broker is removed in any case.
let forceTimer: NodeJS.Timeout | undefined;
for (const signal of signals) {
  process.on(signal, () => {
    forceTimer ??= setTimeout(() => child?.kill('SIGKILL'), 15_000);
  });
}
const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
  child!.once('exit', (exitCode, exitSignal) => resolve([exitCode, exitSignal])),
);
clearTimeout(forceTimer);
await removeBroker();
process.exit(code ?? (signal ? 128 + os.constants.signals[signal] : 1));
