import { P2PError, redactCredentials } from '../errors/index.js';

/** `<where>: <what is wrong> (got "<value>")`, one line. */
export function configError(
  where: string,
  problem: string,
  value: string | undefined,
  details: Record<string, unknown>,
): P2PError {
  const got = value === undefined ? '' : ` (got ${JSON.stringify(redactCredentials(value))})`;
  return new P2PError('CONFIG_INVALID', `${where}: ${problem}${got}`, { details });
}
