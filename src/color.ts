/**
 * Colour for people at a terminal only: never when the stream is not a TTY (pipes, files, CI logs), nor when
 * NO_COLOR is set to anything but the empty string (https://no-color.org), nor on a dumb terminal.
 */
export type Color = 'red' | 'green' | 'yellow' | 'dim' | 'bold';

const CODES: Readonly<Record<Color, readonly [number, number]>> = {
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  dim: [2, 22],
  bold: [1, 22],
};

export function colorEnabled(stream: { readonly isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== '';
  return stream.isTTY === true && !noColor && env.TERM !== 'dumb';
}

/** A painter for one stream: `paint('ok', 'green')`, plain text when colour is off. */
export function painter(stream: { readonly isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env) {
  const enabled = colorEnabled(stream, env);
  return (text: string, color: Color): string => {
    if (!enabled) return text;
    const [open, close] = CODES[color];
    return `\x1b[${open}m${text}\x1b[${close}m`;
  };
}
