/**
 * JSON with object keys sorted and undefined fields left out, so a hash of it depends on the values alone, not on
 * the order some code built the object in; `skip` leaves out fields by name at any depth.
 */
export function canonicalJson(value: unknown, skip: (key: string) => boolean = () => false): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item, skip)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([key, field]) => !skip(key) && field !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, field]) => `${JSON.stringify(key)}:${canonicalJson(field, skip)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
