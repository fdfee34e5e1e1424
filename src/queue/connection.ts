/**
 * `--queue redis://[:password@]HOST[:PORT][/name]`: where the job queue lives. The path names the queue (not a
 * Redis database number, as elsewhere), so several batches can share one Redis; `rediss://` connects over TLS.
 */
import * as z from 'zod';
import { errorMessage, SoraError } from '../errors.js';

export interface QueueAddress {
  readonly host: string;
  readonly port: number;
  readonly username?: string;
  readonly password?: string;
  readonly tls: boolean;
  /** The BullMQ queue name. */
  readonly name: string;
  /** The URL with the password masked, for messages and logs. */
  readonly display: string;
}

export const DEFAULT_QUEUE_NAME = 'ondevice-sora';
/** Every key this tool writes starts with it, so a shared Redis shows whose keys they are. */
export const KEY_PREFIX = 'ondevice-sora';
const DEFAULT_PORT = 6379;
// BullMQ joins the prefix, the name and its own suffixes with ':', so a name must not hold one.
const QUEUE_NAME = /^[A-Za-z0-9_.-]{1,100}$/;
const MESSAGE = 'must be redis://[:password@]host[:port][/name] (name: letters, digits, _ . -)';

export const queueFlag = z
  .string('is required')
  .trim()
  .transform((text, context): QueueAddress => {
    const url = URL.canParse(text) ? new URL(text) : undefined;
    const name = decodeURIComponent(url?.pathname.replace(/^\//, '') ?? '') || DEFAULT_QUEUE_NAME;
    if (url === undefined || !['redis:', 'rediss:'].includes(url.protocol) || url.hostname === '' || url.search !== '' || url.hash !== '' || !QUEUE_NAME.test(name)) {
      context.addIssue({ code: 'custom', message: MESSAGE });
      return z.NEVER;
    }
    const password = url.password === '' ? undefined : decodeURIComponent(url.password);
    const masked = new URL(url);
    if (password !== undefined) masked.password = '***';
    return {
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? DEFAULT_PORT : Number(url.port),
      ...(url.username !== '' && { username: decodeURIComponent(url.username) }),
      ...(password !== undefined && { password }),
      tls: url.protocol === 'rediss:',
      name,
      display: masked.toString().replace(/\/$/, ''),
    };
  });

/**
 * ioredis options for BullMQ. Commands wait for a reconnect instead of failing (maxRetriesPerRequest null, which
 * BullMQ's blocking worker connections require anyway), so a Redis restart pauses workers and followers rather
 * than failing their jobs; reconnect attempts back off to one every 2 s, for as long as it takes.
 */
export function connectionOptions(address: QueueAddress) {
  return {
    host: address.host,
    port: address.port,
    ...(address.username !== undefined && { username: address.username }),
    ...(address.password !== undefined && { password: address.password }),
    ...(address.tls && { tls: {} }),
    maxRetriesPerRequest: null,
    retryStrategy: (attempt: number): number => Math.min(attempt * 100, 2000),
  };
}

const PROBE_TIMEOUT_MS = 5000;

/**
 * Connects once, without retrying, so a wrong address or password is a one-line error at start instead of a
 * command that waits forever for a Redis that is not there.
 */
export async function checkReachable(address: QueueAddress): Promise<void> {
  // Loaded here, not at start-up: ioredis and BullMQ add ~28 MiB to every process, and most commands never queue.
  const { Redis } = await import('ioredis');
  const client = new Redis({
    ...connectionOptions(address),
    lazyConnect: true,
    connectTimeout: PROBE_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  // The 'error' event holds the reason (refused, wrong password); connect() then only says the connection closed.
  let reason: unknown;
  client.on('error', (error) => (reason ??= error));
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    const cause = reason ?? error;
    throw new SoraError('QUEUE', `--queue: cannot use Redis at ${address.display}: ${errorMessage(cause)}`, { cause });
  } finally {
    client.disconnect();
  }
}
