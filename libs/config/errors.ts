import { P2PError } from '../errors/index.js';

/** A value shown in an error must not leak the password of a broker URL. */
export function redactCredentials(value: string): string {
  return value.replace(/(\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@');
}

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
