/**
 * canonicalize() against the rules of fast-json-stable-stringify 2.1.0 (fedai-wire.md §1): fixed cases,
 * plus a differential test against that very package (installed with ts-jest) over seeded random values.
 */
import { describe, expect, test } from '@jest/globals';
import { createRequire } from 'node:module';
import { canonicalize } from '../../supervisor/protocol/canonical-json.js';

const require = createRequire(import.meta.url);
const stableStringify = require('fast-json-stable-stringify') as (v: unknown) => string | undefined;
const fjssVersion = (require('fast-json-stable-stringify/package.json') as { version: string }).version;

describe('fixed cases', () => {
  test.each([
    [{}, '{}'],
    [[], '[]'],
    [null, 'null'],
    [true, 'true'],
    ['', '""'],
    [0, '0'],
    [-0, '0'],
    [1.5, '1.5'],
    [1e21, '1e+21'],
    [1e20, '100000000000000000000'],
    [1e-7, '1e-7'],
    [0.000001, '0.000001'],
    [NaN, 'null'],
    [Infinity, 'null'],
    [-1e-300, '-1e-300'],
    [Number.MAX_SAFE_INTEGER + 2, '9007199254740992'],
    [{ b: 2, a: 1 }, '{"a":1,"b":2}'],
    [{ a: undefined, b: 1 }, '{"b":1}'],
    [{ a: undefined }, '{}'],
    [[undefined, () => 1, Symbol('x')], '[null,null,null]'],
    [{ f: () => 1, s: Symbol('x') }, '{}'],
    [{ nested: { z: [1, { b: null, a: [] }], y: {} } }, '{"nested":{"y":{},"z":[1,{"a":[],"b":null}]}}'],
    ['"\\\n\r\t\b\f\u0000\u001f\u007f', '"\\"\\\\\\n\\r\\t\\b\\f\\u0000\\u001f\u007f"'],
    ['héllo 😀 \u2028\u2029', '"héllo 😀 \u2028\u2029"'],
    ['\ud800', '"\\ud800"'],
    ['\udfff', '"\\udfff"'],
    [{ '\ud83d\ude00': 1, '\uffff': 2, '\ue000': 3 }, '{"😀":1,"\ue000":3,"\uffff":2}'],
    [{ B: 1, a: 2, _: 3, '1': 4, '01': 5 }, '{"01":5,"1":4,"B":1,"_":3,"a":2}'],
    [{ toJSON: () => ({ z: 1, a: 2 }) }, '{"a":2,"z":1}'],
    [[{ toJSON: () => undefined }], '[null]'],
    [{ d: new Date(Date.UTC(2020, 0, 2)) }, '{"d":"2020-01-02T00:00:00.000Z"}'],
  ])('%p → %s', (value, expected) => {
    expect(canonicalize(value)).toBe(expected);
  });

  test('keys sort by UTF-16 code units, not code points: an emoji (surrogates D83D…) sorts before U+E000', () => {
    expect(Object.keys(JSON.parse(canonicalize({ '\ue000': 2, '😀': 1 })))).toEqual(['😀', '\ue000']);
  });

  test('top-level undefined, functions and symbols have no representation (typed error)', () => {
    expect(() => canonicalize(undefined)).toThrow(TypeError);
    expect(() => canonicalize(() => 1)).toThrow(TypeError);
    expect(() => canonicalize({ toJSON: () => undefined })).toThrow(TypeError);
  });

  test('a circular object is a TypeError, but a shared (non-circular) subobject is fine', () => {
    const a: Record<string, unknown> = { x: 1 };
    a.me = a;
    expect(() => canonicalize({ a })).toThrow(/circular/i);
    const shared = { k: 1 };
    expect(canonicalize({ p: shared, q: shared, r: [shared, shared] })).toBe('{"p":{"k":1},"q":{"k":1},"r":[{"k":1},{"k":1}]}');
  });

  test('BigInt is a TypeError (not JSON)', () => {
    expect(() => canonicalize({ n: 1n })).toThrow(TypeError);
  });

  test('the output re-parses to a value with the same canonical form (idempotent)', () => {
    const v = { z: [1, 'a', { y: null, x: [true, false] }], a: 'é\u0001', n: 0.1 };
    const c = canonicalize(v);
    expect(canonicalize(JSON.parse(c))).toBe(c);
  });
});

// ---- differential test against fast-json-stable-stringify 2.1.0 ---------------------------------

/** Mulberry32: a small seeded PRNG so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomString(r: () => number): string {
  const n = Math.floor(r() * 8);
  let s = '';
  for (let i = 0; i < n; i++) {
    const pick = r();
    if (pick < 0.4) s += String.fromCharCode(0x20 + Math.floor(r() * 95));
    else if (pick < 0.55) s += String.fromCharCode(Math.floor(r() * 0x20)); // C0 controls
    else if (pick < 0.65) s += String.fromCharCode(0xd800 + Math.floor(r() * 0x800)); // lone surrogates
    else if (pick < 0.75) s += '😀';
    else if (pick < 0.85) s += String.fromCharCode(0x80 + Math.floor(r() * 0x780));
    else s += String.fromCharCode(Math.floor(r() * 0x10000));
  }
  return s;
}

function randomNumber(r: () => number): number {
  const pick = r();
  if (pick < 0.2) return Math.floor(r() * 2000) - 1000;
  if (pick < 0.4) return (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20);
  if (pick < 0.5) return [0, -0, NaN, Infinity, -Infinity, Number.MIN_VALUE, Number.MAX_VALUE, 1e21, 1e-7, 0.1 + 0.2][Math.floor(r() * 10)];
  const buf = new DataView(new ArrayBuffer(8));
  buf.setUint32(0, Math.floor(r() * 2 ** 32));
  buf.setUint32(4, Math.floor(r() * 2 ** 32));
  return buf.getFloat64(0); // any bit pattern, NaNs included
}

function randomValue(r: () => number, depth: number): unknown {
  const pick = r();
  if (depth > 3 || pick < 0.3) {
    const leaf = r();
    if (leaf < 0.3) return randomString(r);
    if (leaf < 0.6) return randomNumber(r);
    if (leaf < 0.7) return null;
    if (leaf < 0.8) return r() < 0.5;
    if (leaf < 0.9) return undefined;
    const fixed = randomString(r);
    return { toJSON: () => fixed };
  }
  if (pick < 0.6) return Array.from({ length: Math.floor(r() * 5) }, () => randomValue(r, depth + 1));
  const o: Record<string, unknown> = {};
  const n = Math.floor(r() * 6);
  for (let i = 0; i < n; i++) o[randomString(r)] = randomValue(r, depth + 1);
  return o;
}

describe('differential against fast-json-stable-stringify', () => {
  test('the oracle is version 2.1.0', () => {
    expect(fjssVersion).toBe('2.1.0');
  });

  test('5000 seeded random values serialise identically', () => {
    const r = prng(0xfeda1);
    let compared = 0;
    for (let i = 0; i < 5000; i++) {
      const value = { payload: randomValue(r, 0), nonce: randomString(r), ts: randomNumber(r), keyId: randomString(r) };
      const expected = stableStringify(value);
      const got = canonicalize(value);
      if (got !== expected) {
        throw new Error(`mismatch at #${i}:\n  ours:   ${JSON.stringify(got)}\n  oracle: ${JSON.stringify(expected)}`);
      }
      compared++;
    }
    expect(compared).toBe(5000);
  });
});

describe('values that are already in canonical order (the JSON.stringify fast path)', () => {
  const deep = (n: number): unknown => (n === 0 ? { a: 1, b: [2, { c: 3 }] } : { a: deep(n - 1), z: n });
  const nullProto = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1, b: { c: 'x' } });
  const inheritedEnumerable = Object.create({ b: 'inherited' }) as Record<string, unknown>;
  inheritedEnumerable.a = 1;
  inheritedEnumerable.c = 2;
  class Point {
    constructor(readonly x: number, readonly y: number) {}
  }
  const cases: [string, unknown][] = [
    ['flat sorted object', { a: 1, b: 'two', c: true, d: null }],
    ['sorted with -0, NaN, Infinity, 1e21, 5e-7', { a: -0, b: NaN, c: Infinity, d: 1e21, e: 5e-7 }],
    ['undefined, functions and symbols in objects and arrays', { a: undefined, b: () => 1, c: [undefined, () => 1, Symbol('s'), 1], d: Symbol('t') }],
    ['sparse array', { a: [1, , 3] }],
    ['nested sorted objects and arrays', { a: [{ a: 1, b: [{ x: null }] }], b: { c: { d: { e: [] } } } }],
    ['integer-like keys in numeric order that is not code-unit order', { 1: 'a', 2: 'b', 10: 'c' }],
    ['integer-like keys that are also in code-unit order', { 1: 'a', 2: 'b', x: 'c' }],
    ['toJSON on a sorted object', { a: 1, toJSON: () => ({ z: 1, a: 2 }) }],
    ['a Date inside', { a: new Date(0), b: 1 }],
    ['null-prototype object', nullProto],
    ['an inherited enumerable key', { x: inheritedEnumerable }],
    ['class instance', { p: new Point(1, 2) }],
    ['typed array and Map', { a: new Uint8Array([1, 2, 3]), b: new Map([['k', 1]]) }],
    ['lone surrogates and controls', { a: '\ud800', b: '\u0000\u001f"\\', c: '😀' }],
    ['sorted but deeper than the fast path goes', deep(40)],
    ['empty object and array', { a: {}, b: [] }],
  ];
  test.each(cases)('%s: same bytes as fast-json-stable-stringify', (_name, value) => {
    expect(canonicalize(value)).toBe(stableStringify(value));
  });

  test('a circular value that is otherwise in order is still a TypeError', () => {
    const o: Record<string, unknown> = { a: 1 };
    o.b = o;
    expect(() => canonicalize(o)).toThrow(TypeError);
    const arr: unknown[] = [1];
    arr.push(arr);
    expect(() => canonicalize({ a: arr })).toThrow(TypeError);
  });

  test('BigInt still throws', () => {
    expect(() => canonicalize({ a: 1n })).toThrow(TypeError);
  });
});
