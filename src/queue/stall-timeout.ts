/** How long a job's lock outlives a worker that stopped renewing it (killed, crashed, cut off): `worker`'s default. */
export const DEFAULT_STALL_SECONDS = 30;
