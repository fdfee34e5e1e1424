/** A size in binary units as messages show it: 1.5 GiB, 256 MiB (no decimal from 100 of a unit up). */
export function formatBytes(bytes: number): string {
  const sign = bytes < 0 ? '-' : '';
  const size = Math.abs(bytes);
  for (const [unit, factor] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (size >= factor) return `${sign}${(size / factor).toFixed(size >= 100 * factor ? 0 : 1)} ${unit}`;
  }
  return `${sign}${size} B`;
}
