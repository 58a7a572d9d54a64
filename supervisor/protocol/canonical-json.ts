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
  const keys = sortKeys(Object.keys(node));
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

/**
 * Array#sort's default order (UTF-16 code units), in place. Objects on the wire have a handful of keys:
 * an insertion sort needs no work array, where Array#sort allocates one per call (a third of the
 * bytes canonicalize allocated per /infer request). Larger key sets take Array#sort.
 */
function sortKeys(keys: string[]): string[] {
  const n = keys.length;
  if (n > 24) return keys.sort();
  for (let i = 1; i < n; i++) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
  return keys;
}
