/** The port the iPhone runner app listens on (its loopback), and `serve`'s default. */
export const DEFAULT_RUNNER_PORT = 7315;
