/**
 * schemas/*.json against supervisor/protocol/wire-types.ts (read with the TypeScript compiler API, so a
 * drift on either side fails), plus positive and negative instances for every schema.
 */
import { describe, expect, test } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import {
  ALL_WIRE_KINDS,
  SCHEMAS_DIR,
  WIRE_KINDS,
  validateEnvelope,
  validateEnvelopeOf,
  validateWire,
  type AnyWireKind,
} from '../../supervisor/protocol/wire-schemas.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const vectors = JSON.parse(readFileSync(resolve(repoRoot, '../shared/spec/vectors.json'), 'utf8'));

type Schema = Record<string, any>;
const schemaFiles = readdirSync(join(repoRoot, 'schemas')).filter((f) => f.endsWith('.json') && f !== 'sandbox-profile.json');
const schemas = new Map<string, Schema>(schemaFiles.map((f) => [f, JSON.parse(readFileSync(join(repoRoot, 'schemas', f), 'utf8'))]));

/** Follows $ref (file-relative, no fragments) and merges sibling keywords over the target. */
function deref(s: Schema): Schema {
  let out: Schema = s;
  while (typeof out.$ref === 'string') {
    const target = schemas.get(out.$ref);
    if (!target) throw new Error(`dangling $ref ${out.$ref}`);
    const { $ref: _ref, ...rest } = out;
    out = { ...target, ...rest, properties: { ...(target.properties ?? {}), ...(rest.properties ?? {}) } };
    if (Object.keys(out.properties).length === 0) delete out.properties;
  }
  return out;
}

function pointer(s: Schema, path: string): Schema {
  let cur = deref(s);
  for (const part of path.split('/').filter(Boolean)) cur = deref(cur[part]);
  return cur;
}

// ---- the TypeScript side -------------------------------------------------------------------------

function parse(file: string): ts.SourceFile {
  return ts.createSourceFile(file, readFileSync(join(repoRoot, file), 'utf8'), ts.ScriptTarget.ES2022, true);
}
const wireTypes = parse('supervisor/protocol/wire-types.ts');
const envelopeTs = parse('supervisor/crypto/envelope.ts');

const interfaces = new Map<string, ts.InterfaceDeclaration>();
const aliases = new Map<string, ts.TypeAliasDeclaration>();
for (const sf of [wireTypes, envelopeTs]) {
  for (const st of sf.statements) {
    if (ts.isInterfaceDeclaration(st)) interfaces.set(st.name.text, st);
    if (ts.isTypeAliasDeclaration(st)) aliases.set(st.name.text, st);
  }
}

/** String literal members of a union (following local aliases), or undefined if not a literal union. */
function literalUnion(t: ts.TypeNode): string[] | undefined {
  if (ts.isTypeReferenceNode(t) && ts.isIdentifier(t.typeName) && aliases.has(t.typeName.text)) {
    return literalUnion(aliases.get(t.typeName.text)!.type);
  }
  const parts = ts.isUnionTypeNode(t) ? t.types : [t];
  const out: string[] = [];
  for (const p of parts) {
    if (ts.isLiteralTypeNode(p) && ts.isStringLiteral(p.literal)) out.push(p.literal.text);
    else return undefined;
  }
  return out;
}

/**
 * Compares the members of an interface or type literal with a schema's properties/required, and
 * recurses into inline object types, interface references, arrays and string-literal unions.
 */
function compare(where: string, members: ts.NodeArray<ts.TypeElement>, schema: Schema, problems: string[]): void {
  const s = deref(schema);
  const props: Record<string, Schema> = s.properties ?? {};
  const required = new Set<string>(s.required ?? []);
  const seen = new Set<string>();
  for (const m of members) {
    if (!ts.isPropertySignature(m) || !m.name) continue;
    const name = (m.name as ts.Identifier).text;
    seen.add(name);
    const optional = m.questionToken !== undefined;
    if (!(name in props)) {
      problems.push(`${where}.${name}: in the TypeScript type but not in the schema`);
      continue;
    }
    if (optional && required.has(name)) problems.push(`${where}.${name}: optional in TypeScript, required in the schema`);
    if (!optional && !required.has(name)) problems.push(`${where}.${name}: required in TypeScript, optional in the schema`);
    if (m.type) compareType(`${where}.${name}`, m.type, props[name], problems);
  }
  for (const name of Object.keys(props)) {
    if (!seen.has(name)) problems.push(`${where}.${name}: in the schema but not in the TypeScript type`);
  }
}

function compareType(where: string, t: ts.TypeNode, propSchema: Schema, problems: string[]): void {
  const s = deref((propSchema as unknown) === true ? {} : propSchema);
  const lits = literalUnion(t);
  if (lits) {
    const en = s.enum as string[] | undefined;
    if (!en) problems.push(`${where}: TypeScript has literals ${lits.join('|')}, schema has no enum`);
    else if ([...lits].sort().join('|') !== [...en].sort().join('|')) {
      problems.push(`${where}: TypeScript literals ${lits.join('|')} ≠ schema enum ${en.join('|')}`);
    }
    return;
  }
  if (ts.isTypeLiteralNode(t)) {
    if (s.properties) compare(where, t.members, s, problems);
    return;
  }
  if (ts.isArrayTypeNode(t)) {
    if (s.type !== 'array') problems.push(`${where}: array in TypeScript, ${s.type} in the schema`);
    else if (s.items && Object.keys(s.items).length > 1) compareType(`${where}[]`, t.elementType, s.items, problems);
    return;
  }
  if (ts.isTypeReferenceNode(t) && ts.isIdentifier(t.typeName)) {
    const iface = interfaces.get(t.typeName.text);
    if (iface && s.properties) {
      if (t.typeName.text === 'Envelope' && t.typeArguments?.[0]) {
        compare(where, iface.members, s, problems);
        compareType(`${where}.payload`, t.typeArguments[0], s.properties.payload, problems);
      } else {
        compare(where, iface.members, s, problems);
      }
    }
  }
}

/** Every interface in wire-types.ts ↔ its schema (file + JSON pointer). */
const TYPE_TO_SCHEMA: Array<[string, string, string]> = [
  ['Pricing', 'capability.json', '/properties/pricing'],
  ['Capability', 'capability.json', ''],
  ['ModelInfoWire', 'model-info.json', ''],
  ['NodeDescriptor', 'node-descriptor.json', ''],
  ['PaymentSplit', 'payment-split.json', ''],
  ['PaymentRequest', 'payment-request.json', ''],
  ['PaymentReceipt', 'payment-receipt.json', ''],
  ['InferenceRequest', 'inference-request.json', ''],
  ['InferenceResponse', 'inference-response.json', ''],
  ['MeteringRecord', 'metering-record.json', ''],
  ['StreamChunk', 'stream-chunk.json', ''],
  ['StreamFinal', 'stream-final.json', ''],
  ['ErrorBody', 'error-body.json', ''],
  ['ErrorBody', 'stream-error.json', ''],
  ['Envelope', 'envelope.json', ''],
];

describe('wire-types.ts and schemas/*.json stay in step', () => {
  test('every interface in wire-types.ts has a schema, and every schema a type', () => {
    const mapped = new Set(TYPE_TO_SCHEMA.map(([t]) => t));
    const declared = wireTypes.statements.filter(ts.isInterfaceDeclaration).map((d) => d.name.text);
    expect(declared.filter((d) => !mapped.has(d))).toEqual([]);
    const covered = new Set(TYPE_TO_SCHEMA.map(([, f]) => f));
    covered.add('job-type.json'); // compared through JobType literal unions
    expect(schemaFiles.filter((f) => !covered.has(f))).toEqual([]);
  });

  test.each(TYPE_TO_SCHEMA)('%s ↔ %s%s', (typeName, file, ptr) => {
    const iface = interfaces.get(typeName);
    expect(iface).toBeDefined();
    const schema = pointer(schemas.get(file)!, ptr);
    const problems: string[] = [];
    compare(typeName, iface!.members, schema, problems);
    expect(problems).toEqual([]);
  });

  test('JobType literals equal job-type.json enum', () => {
    expect(literalUnion(aliases.get('JobType')!.type)!.sort()).toEqual([...schemas.get('job-type.json')!.enum].sort());
  });

  test('the comparison itself detects drift (renamed, optional-flipped and extra fields)', () => {
    const src = `interface X { a: string; b?: number; c: 'p' | 'q'; d: { e: number }; }`;
    const sf = ts.createSourceFile('x.ts', src, ts.ScriptTarget.ES2022, true);
    const x = sf.statements[0] as ts.InterfaceDeclaration;
    const ok: Schema = {
      type: 'object',
      properties: { a: {}, b: {}, c: { enum: ['q', 'p'] }, d: { type: 'object', properties: { e: {} }, required: ['e'] } },
      required: ['a', 'c', 'd'],
    };
    const p0: string[] = [];
    compare('X', x.members, ok, p0);
    expect(p0).toEqual([]);
    const drifted: Schema = {
      type: 'object',
      properties: { a: {}, b: {}, c: { enum: ['p'] }, d: { type: 'object', properties: { e: {}, f: {} }, required: [] }, z: {} },
      required: ['a', 'b', 'd'],
    };
    const p1: string[] = [];
    compare('X', x.members, drifted, p1);
    expect(p1).toEqual(
      expect.arrayContaining([
        'X.b: optional in TypeScript, required in the schema',
        'X.c: required in TypeScript, optional in the schema',
        'X.c: TypeScript literals p|q ≠ schema enum p',
        'X.d.e: required in TypeScript, optional in the schema',
        'X.d.f: in the schema but not in the TypeScript type',
        'X.z: in the schema but not in the TypeScript type',
      ]),
    );
  });
});

describe('schema files', () => {
  test.each(schemaFiles)('%s: draft 2020-12 with a fedai.dev $id', (file) => {
    const s = schemas.get(file)!;
    expect(s.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(s.$id).toBe(`https://fedai.dev/schemas/${file}`);
  });

  test('the validators cover every kind and load from schemas/', () => {
    expect(SCHEMAS_DIR).toBe(join(repoRoot, 'schemas'));
    for (const k of ALL_WIRE_KINDS) expect(schemas.has(`${k}.json`)).toBe(true);
  });
});

// ---- instances -----------------------------------------------------------------------------------

const v1 = vectors.v1_router_to_node_infer.envelope;
const clone = <T>(x: T): T => structuredClone(x);
const details = (r: { ok: boolean; details?: string[] }) => (r.ok ? [] : r.details!);

const HASH = 'ab'.repeat(32);
const GOOD: Record<AnyWireKind, unknown> = {
  'inference-request': v1.payload,
  'inference-response': vectors.v3_node_infer_200_body_for_v1.response.payload,
  'metering-record': vectors.v3_node_infer_200_body_for_v1.metering.payload,
  'node-descriptor': vectors.v4_heartbeat_register_node.envelope.payload,
  'payment-request': { requestId: 'r', payeeType: 'node', payeeId: 'node-1', amountSats: 21, invoice: 'lnbc1', expiresAtMs: 1 },
  'payment-receipt': JSON.parse(vectors.v2_client_payment_receipt.canonical).payload,
  'stream-chunk': { requestId: 'r', modelId: 'm', delta: 'x', index: 0 },
  'stream-final': vectors.v3_node_infer_200_body_for_v1,
  'stream-error': { error: 'internal-error' },
  'error-body': { error: 'payment-required', payment: { any: 'thing' } },
  capability: vectors.v4_heartbeat_register_node.envelope.payload.capabilities[0],
  'model-info': { id: 'm', contextWindow: 4096 },
  'payment-split': { payeeType: 'router', payeeId: 'npub1x', amountSats: 1, role: 'router-fee' },
};

describe('positive instances', () => {
  test.each(ALL_WIRE_KINDS)('%s: a good instance validates, and an unknown field passes', (kind) => {
    expect(details(validateWire(kind, GOOD[kind]))).toEqual([]);
    const withExtra = { ...(GOOD[kind] as object), someFutureField: { nested: [1, 2] } };
    expect(details(validateWire(kind, withExtra))).toEqual([]);
  });

  test.each(WIRE_KINDS)('%s: wrapped in an envelope validates', (kind) => {
    const env = { payload: GOOD[kind], nonce: 'n', ts: 0, keyId: 'npub1x', sig: '' };
    expect(details(validateEnvelopeOf(kind, env))).toEqual([]);
  });

  test('vectors validate as their kinds', () => {
    expect(validateEnvelopeOf('inference-request', v1).ok).toBe(true);
    const v2b = JSON.parse(vectors.v2b_router_infer_with_receipt_and_unicode.canonical);
    expect(validateEnvelopeOf('inference-request', { ...v2b, sig: vectors.v2b_router_infer_with_receipt_and_unicode.sig }).ok).toBe(true);
    expect(validateEnvelopeOf('inference-response', vectors.v3_node_infer_200_body_for_v1.response).ok).toBe(true);
    expect(validateEnvelopeOf('metering-record', vectors.v3_node_infer_200_body_for_v1.metering).ok).toBe(true);
    expect(validateEnvelopeOf('node-descriptor', vectors.v4_heartbeat_register_node.envelope).ok).toBe(true);
    expect(validateEnvelopeOf('payment-receipt', v2b.payload.paymentReceipts[0]).ok).toBe(true);
  });

  test('optional fields at their bounds', () => {
    const p = { ...v1.payload, temperature: 0, topP: 1, jobType: 'GEN_CHUNK', metadata: { a: '1' }, paymentReceipts: [] };
    expect(details(validateWire('inference-request', p))).toEqual([]);
    expect(validateWire('inference-request', { ...p, temperature: 2, topP: 0.0001 }).ok).toBe(true);
    expect(validateWire('inference-request', { ...p, maxTokens: 1, prompt: '' }).ok).toBe(true);
    expect(validateWire('payment-receipt', { ...(GOOD['payment-receipt'] as object), paymentHash: HASH.toUpperCase(), preimage: HASH }).ok).toBe(true);
    // amountSats 0 is a schema-valid integer: it must fail later as payment-amount-invalid
    expect(validateWire('payment-receipt', { ...(GOOD['payment-receipt'] as object), amountSats: 0 }).ok).toBe(true);
  });
});

describe('negative instances', () => {
  const req = (patch: Record<string, unknown>) => ({ ...clone(v1), payload: { ...v1.payload, ...patch } });
  const bad = (kind: Parameters<typeof validateEnvelopeOf>[0], value: unknown) => details(validateEnvelopeOf(kind, value));

  test.each([
    [-1, '/payload/maxTokens: must be >= 1'],
    [0, '/payload/maxTokens: must be >= 1'],
    [1.5, '/payload/maxTokens: must be integer'],
    ['8', '/payload/maxTokens: must be integer'],
    [null, '/payload/maxTokens: must be integer'],
  ])('maxTokens %p is refused', (value, expected) => {
    expect(bad('inference-request', req({ maxTokens: value }))).toContain(expected);
  });

  test('missing maxTokens is refused', () => {
    const e = clone(v1);
    delete e.payload.maxTokens;
    expect(bad('inference-request', e)).toEqual(["/payload: must have required property 'maxTokens'"]);
  });

  test.each([
    [{ temperature: -0.1 }, '/payload/temperature'],
    [{ temperature: 2.01 }, '/payload/temperature'],
    [{ topP: 0 }, '/payload/topP'],
    [{ topP: 1.1 }, '/payload/topP'],
    [{ jobType: 'CHAT' }, '/payload/jobType'],
    [{ metadata: { a: 1 } }, '/payload/metadata/a'],
    [{ metadata: 'x' }, '/payload/metadata'],
    [{ requestId: '' }, '/payload/requestId'],
    [{ requestId: 'x'.repeat(257) }, '/payload/requestId'],
    [{ modelId: 7 }, '/payload/modelId'],
    [{ prompt: ['a'] }, '/payload/prompt'],
    [{ paymentReceipts: {} }, '/payload/paymentReceipts'],
    [{ paymentReceipts: ['x'] }, '/payload/paymentReceipts/0'],
    [{ paymentReceipts: Array.from({ length: 17 }, () => ({})) }, '/payload/paymentReceipts'],
  ])('inference-request %j is refused at %s', (patch, path) => {
    const d = bad('inference-request', req(patch));
    expect(d.length).toBeGreaterThan(0);
    expect(d.some((x) => x.startsWith(path + ':'))).toBe(true);
  });

  test('a malformed receipt object inside paymentReceipts passes the request schema (fails later as a receipt)', () => {
    expect(bad('inference-request', req({ paymentReceipts: [{ payload: 1 }] }))).toEqual([]);
  });

  test('envelope outer object is strict', () => {
    expect(bad('inference-request', { ...clone(v1), extra: 1 })).toEqual(['/: must NOT have additional properties ("extra")']);
    expect(details(validateEnvelope({ ...clone(v1), extra: 1 }))).toEqual(['/: must NOT have additional properties ("extra")']);
    for (const k of ['payload', 'nonce', 'ts', 'keyId', 'sig']) {
      const e = clone(v1);
      delete e[k];
      expect(bad('inference-request', e)).toContain(`/: must have required property '${k}'`);
    }
  });

  test.each([
    [{ nonce: '' }, '/nonce'],
    [{ nonce: 'n'.repeat(257) }, '/nonce'],
    [{ nonce: 5 }, '/nonce'],
    [{ ts: -1 }, '/ts'],
    [{ ts: 1.5 }, '/ts'],
    [{ ts: '1700000000000' }, '/ts'],
    [{ keyId: 'k'.repeat(129) }, '/keyId'],
    [{ keyId: '' }, '/keyId'],
    [{ sig: 's'.repeat(257) }, '/sig'],
    [{ sig: null }, '/sig'],
  ])('envelope field %j is refused at %s', (patch, path) => {
    const d = bad('inference-request', { ...clone(v1), ...patch });
    expect(d.some((x) => x.startsWith(path + ':'))).toBe(true);
  });

  test('non-objects are refused with a root detail, never a throw', () => {
    for (const v of [null, undefined, 1, 'x', [], true]) {
      const d = bad('inference-request', v);
      expect(d.length).toBeGreaterThan(0);
      expect(d[0].startsWith('/:')).toBe(true);
    }
  });

  test('deeply nested input never throws', () => {
    const deep = JSON.parse('{"x":'.repeat(50_000) + '1' + '}'.repeat(50_000)) as unknown;
    expect(() => validateEnvelopeOf('inference-request', { ...clone(v1), payload: { ...v1.payload, extra: deep } })).not.toThrow();
    expect(() => validateEnvelopeOf('inference-request', { ...clone(v1), payload: deep })).not.toThrow();
    expect(validateEnvelopeOf('inference-request', { ...clone(v1), payload: deep }).ok).toBe(false);
    const deepArr = JSON.parse('['.repeat(50_000) + ']'.repeat(50_000)) as unknown;
    expect(validateEnvelopeOf('inference-request', { ...clone(v1), payload: { ...v1.payload, paymentReceipts: [deepArr] } }).ok).toBe(false);
  });

  test('details are capped at 20', () => {
    const payload: Record<string, unknown> = {};
    const r = validateWire('metering-record', { ...payload });
    expect(r.ok).toBe(false);
    const many = validateEnvelopeOf('inference-request', {
      payload: { metadata: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i])) },
      a: 1, b: 2, c: 3,
    });
    expect(many.ok).toBe(false);
    expect(details(many).length).toBe(20);
  });

  test.each([
    ['payment-receipt', { amountSats: 1.5 }, '/amountSats'],
    ['payment-receipt', { amountSats: '21' }, '/amountSats'],
    ['payment-receipt', { paidAtMs: -1 }, '/paidAtMs'],
    ['payment-receipt', { paymentHash: 'ab'.repeat(31) }, '/paymentHash'],
    ['payment-receipt', { paymentHash: 'zz'.repeat(32) }, '/paymentHash'],
    ['payment-receipt', { preimage: HASH + '00' }, '/preimage'],
    ['payment-receipt', { invoice: 'l'.repeat(4097) }, '/invoice'],
    ['payment-receipt', { payeeType: 'client' }, '/payeeType'],
    ['payment-receipt', { splits: [{ payeeType: 'node', payeeId: 'n', amountSats: -1 }] }, '/splits/0/amountSats'],
    ['payment-receipt', { splits: [{ payeeType: 'node', payeeId: 'n', amountSats: 1, role: 'tip' }] }, '/splits/0/role'],
    ['payment-request', { expiresAtMs: 1.5 }, '/expiresAtMs'],
    ['payment-request', { metadata: { a: true } }, '/metadata/a'],
    ['node-descriptor', { endpoint: 'not a url' }, '/endpoint'],
    ['node-descriptor', { endpoint: 'ftp://x.example' }, '/endpoint'],
    ['node-descriptor', { capacity: { maxConcurrent: 1 } }, '/capacity'],
    ['node-descriptor', { capabilities: [{ modelId: 'm' }] }, '/capabilities/0'],
    ['capability', { pricing: { unit: 'byte', inputRate: 0, outputRate: 0, currency: 'SAT' } }, '/pricing/unit'],
    ['capability', { pricing: { unit: 'token', inputRate: -1, outputRate: 0, currency: 'SAT' } }, '/pricing/inputRate'],
    ['capability', { jobTypes: ['NOPE'] }, '/jobTypes/0'],
    ['capability', { contextWindow: 0 }, '/contextWindow'],
    ['metering-record', { promptHash: 'xyz' }, '/promptHash'],
    ['metering-record', { outcome: 'exploded' }, '/outcome'],
    ['metering-record', { inputTokens: -1 }, '/inputTokens'],
    ['inference-response', { usage: { inputTokens: 1 } }, '/usage'],
    ['inference-response', { output: null }, '/output'],
    ['stream-chunk', { index: -1 }, '/index'],
    ['stream-error', { error: 'Not Kebab' }, '/error'],
    ['error-body', { error: 3 }, '/error'],
    ['model-info', { contextWindow: 1.5 }, '/contextWindow'],
    ['payment-split', { payeeId: '' }, '/payeeId'],
  ] as Array<[AnyWireKind, Record<string, unknown>, string]>)('%s %j is refused at %s', (kind, patch, path) => {
    const d = details(validateWire(kind, { ...(GOOD[kind] as object), ...patch }));
    expect(d.some((x) => x === `${path}: ${x.slice(path.length + 2)}` && x.startsWith(path + ':'))).toBe(true);
  });

  test('stream-final requires strict, well-typed envelopes', () => {
    const good = clone(vectors.v3_node_infer_200_body_for_v1);
    expect(validateWire('stream-final', { ...good, response: { ...good.response, extra: 1 } }).ok).toBe(false);
    const badPayload = clone(good);
    badPayload.metering.payload.promptHash = 'nope';
    expect(details(validateWire('stream-final', badPayload))).toContain('/metering/payload/promptHash: must match pattern "^[0-9a-f]{64}$"');
    expect(validateWire('stream-final', { response: good.response }).ok).toBe(false);
  });

  test('an unknown kind is a typed failure, not a throw', () => {
    expect(validateWire('nope' as AnyWireKind, {}).ok).toBe(false);
    expect(validateEnvelopeOf('nope' as 'inference-request', {}).ok).toBe(false);
  });

  test('payload type is checked against the kind asked for', () => {
    expect(validateEnvelopeOf('node-descriptor', v1).ok).toBe(false);
    expect(validateEnvelopeOf('payment-receipt', v1).ok).toBe(false);
  });
});
