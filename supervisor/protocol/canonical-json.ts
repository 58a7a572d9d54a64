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
  // Already canonical (every object's keys in order, nothing JSON.stringify treats differently): the
  // engine's own serialiser gives the same bytes without building the string piece by piece.
  if (node !== null && typeof node === 'object' && isCanonicalShape(node, 0)) return JSON.stringify(node);
  if (node !== null && typeof node === 'object' && typeof (node as { toJSON?: unknown }).toJSON === 'function') {
    node = (node as { toJSON: () => unknown }).toJSON();
  }
  if (node === undefined) return undefined;
  if (typeof node === 'number') return Number.isFinite(node) ? '' + node : 'null';
  if (typeof node !== 'object') return JSON.stringify(node);
  if (node === null) return 'null';
  if (seen.includes(node)) throw new TypeError('Converting circular structure to JSON');
  if (Array.isArray(node)) {
    seen.push(node);
    let out = '[';
    for (let i = 0; i < node.length; i++) {
      if (i) out += ',';
      out += write(node[i], seen) ?? 'null';
    }
    seen.pop();
    return out + ']';
  }
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

const MAX_FAST_DEPTH = 16;

/**
 * True when JSON.stringify(node) is exactly canonicalize(node): plain objects (prototype Object or
 * null) whose own keys already come in UTF-16 code-unit order, arrays, and leaves JSON.stringify and
 * canonicalize write alike (strings, numbers — non-finite as null, -0 as 0 —, booleans, null, and
 * undefined/functions/symbols, which both drop from objects and write as null in arrays). No toJSON,
 * no other object kinds, depth bounded (so a cycle falls back to the checked path).
 */
function isCanonicalShape(node: object, depth: number): boolean {
  if (depth > MAX_FAST_DEPTH) return false;
  if (Array.isArray(node)) {
    if (Object.getPrototypeOf(node) !== Array.prototype) return false;
    for (let i = 0; i < node.length; i++) {
      const v: unknown = node[i];
      if (v !== null && typeof v === 'object' && !isCanonicalShape(v, depth + 1)) return false;
      if (typeof v === 'bigint') return false;
    }
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(node);
  if (proto !== Object.prototype && proto !== null) return false;
  let prev: string | undefined;
  for (const key in node) {
    // for-in lists own keys first, in the order JSON.stringify writes them; an inherited enumerable
    // key (a polluted prototype) or an out-of-order key sends the value down the general path.
    if (!Object.prototype.hasOwnProperty.call(node, key)) return false;
    if (prev !== undefined && !(prev < key)) return false;
    prev = key;
    const v: unknown = (node as Record<string, unknown>)[key];
    if (key === 'toJSON' && typeof v === 'function') return false;
    if (v !== null && typeof v === 'object' && !isCanonicalShape(v, depth + 1)) return false;
    if (typeof v === 'bigint') return false;
  }
  return true;
}
