/** `serve`: runs blocks for other processes or machines. The work is in ../actions/serve.ts. */
import type { Command } from 'commander';
import { COMPUTE_UNITS } from '../../native/coreml.js';
import { formatBytes } from '../../pipeline/format-bytes.js';
import { BACKEND_KINDS, EXECUTION_PROVIDERS } from '../../runtime/backend-kinds.js';
import { DEFAULT_RUNNER_PORT } from '../../runtime/runner-port.js';
import { DEFAULT_LIMITS } from '../../serve/runner-limits.js';
import { addGraphCacheOptions, MODEL_HELP, TOKEN_ENV } from '../shared-options.js';

export function register(program: Command): void {
  const command = program
    .command('serve')
    .description('run blocks for other processes or machines (generate --backend remote --connect), keeping them loaded between jobs')
    .option('--listen <host:port>', `TCP address (default 127.0.0.1:${DEFAULT_RUNNER_PORT}); other than loopback only with --token`)
    .option('--socket <path>', 'a Unix socket instead (only this user can open it)')
    .option('--stdio', 'one client on stdin/stdout instead (e.g. through ssh)')
    .option('--model <dir>', MODEL_HELP)
    .option('--token <token>', `required of every client (default: $${TOKEN_ENV}); needed to listen beyond loopback`)
    .option('--backend <name>', `${BACKEND_KINDS.join(' | ')}: ONNX Runtime, or CoreML (macOS)`, 'onnx')
    .option('--execution-provider <ep>', `ONNX Runtime: ${EXECUTION_PROVIDERS.join(' | ')} (falls back to cpu)`, 'cpu');
  addGraphCacheOptions(command)
    .option('--compute-units <units>', `CoreML: ${COMPUTE_UNITS.join(' | ')} for every block (default: each block's, or the client's)`)
    .option('--max-frame <size>', `largest message a client may send, e.g. 512M (default ${formatBytes(DEFAULT_LIMITS.maxFrameBytes)})`)
    .action(async (options: Record<string, unknown>, self: Command) => {
      const { serveAction } = await import('../actions/serve.js');
      await serveAction(options, self);
    });
}
