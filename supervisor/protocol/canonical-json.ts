/**
 * Canonical JSON exactly as fed_AI signs it: the rules of fast-json-stable-stringify 2.1.0
 * (../shared/spec/fedai-wire.md §1). Keys sorted by UTF-16 code units (Array#sort default), no
 * whitespace, `undefined` values dropped from objects and `null` in arrays, numbers as String(n)
 * (non-finite → null, -0 → 0), strings as JSON.stringify writes them, toJSON honoured.
 */
export function canonicalize(value: unknown): string {
  const out = write(value, []);
  if (out === undefined) throw new TypeError('value has no JSON representation');
  return out;
}

function write(node: unknown, seen: object[]): string | undefined {
  if (node !== null && typeof node === 'object' && typeof (node as { toJSON?: unknown }).toJSON === 'function') {
    node = (node as { toJSON: () => unknown }).toJSON();
  }
  if (node === undefined) return undefined;
  if (typeof node === 'number') return Number.isFinite(node) ? '' + node : 'null';
  if (typeof node !== 'object') return JSON.stringify(node);
  if (node === null) return 'null';
  if (Array.isArray(node)) {
    let out = '[';
    for (let i = 0; i < node.length; i++) {
      if (i) out += ',';
      out += write(node[i], seen) ?? 'null';
    }
    return out + ']';
  }
  if (seen.includes(node)) throw new TypeError('Converting circular structure to JSON');
  seen.push(node);
  const keys = Object.keys(node).sort();
  let out = '';
  for (const key of keys) {
    const v = write((node as Record<string, unknown>)[key], seen);
    if (v === undefined) continue;
    if (out) out += ',';
    out += JSON.stringify(key) + ':' + v;
  }
  seen.pop();
  return '{' + out + '}';
}
