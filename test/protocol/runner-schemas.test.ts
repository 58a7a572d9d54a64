/**
 * Keeps schemas/runner/*.json in step with the interfaces of supervisor/protocol/runner-protocol.ts:
 * every interface maps to a schema, every member to a property with the same optionality and a
 * compatible type, recursively (nested type literals, arrays, references, string-literal unions).
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { PACKAGE_ROOT } from '../../supervisor/runners/runner-command.js';
import { RUNNER_SCHEMA_DIR, runnerValidators, type RunnerSchemaName } from '../../runner-host/host.js';
import { ERRORS, isErrorCode } from '../../supervisor/errors.js';

type Schema = Record<string, unknown> & {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  additionalProperties?: Schema | boolean;
  $defs?: Record<string, Schema>;
};

const schemas = new Map<string, Schema>();
for (const f of readdirSync(RUNNER_SCHEMA_DIR).filter((x) => x.endsWith('.json'))) {
  schemas.set(f, JSON.parse(readFileSync(join(RUNNER_SCHEMA_DIR, f), 'utf8')) as Schema);
}

/** Interface name → "file.json" or "file.json#/$defs/name". */
const MAPPING: Record<string, string> = {
  InitializeParams: 'initialize-params.json',
  InitializeResult: 'initialize-result.json',
  ListModelsResult: 'list-models-result.json',
  InferParams: 'infer-params.json',
  InferResult: 'infer-result.json',
  InferChunkParams: 'infer-chunk-params.json',
  EstimateParams: 'estimate-params.json',
  EstimateResult: 'estimate-result.json',
  HealthResult: 'health-result.json',
  LogParams: 'log-params.json',
  RunnerErrorData: 'error-data.json',
  ModelInfo: 'defs.json#/$defs/modelInfo',
  RunnerCapabilities: 'defs.json#/$defs/capabilities',
  RunnerInferRequest: 'defs.json#/$defs/inferRequest',
  Usage: 'defs.json#/$defs/usage',
};

function resolvePointer(ref: string, baseFile: string): { schema: Schema; key: string } {
  const [file, pointer] = ref.split('#');
  const f = file === '' ? baseFile : file;
  let node = schemas.get(f) as unknown;
  if (node === undefined) throw new Error(`no schema file ${f}`);
  for (const part of (pointer ?? '').split('/').filter(Boolean)) node = (node as Record<string, unknown>)[part];
  if (node === undefined) throw new Error(`unresolved $ref ${ref}`);
  return { schema: node as Schema, key: pointer ? `${f}#${pointer}` : f };
}

/** Follows $ref chains; returns the schema and the canonical key of the last $ref (if any). */
function deref(s: Schema, baseFile: string): { schema: Schema; key?: string } {
  let cur = s;
  let key: string | undefined;
  for (let i = 0; i < 8 && cur.$ref; i++) {
    const r = resolvePointer(cur.$ref, baseFile);
    cur = r.schema;
    key = r.key;
  }
  return { schema: cur, ...(key ? { key } : {}) };
}

const source = ts.createSourceFile(
  'runner-protocol.ts',
  readFileSync(join(PACKAGE_ROOT, 'supervisor', 'protocol', 'runner-protocol.ts'), 'utf8'),
  ts.ScriptTarget.ES2022,
  true,
  ts.ScriptKind.TS,
);
const interfaces = new Map<string, ts.InterfaceDeclaration>();
const aliases = new Map<string, ts.TypeAliasDeclaration>();
for (const st of source.statements) {
  if (ts.isInterfaceDeclaration(st)) interfaces.set(st.name.text, st);
  if (ts.isTypeAliasDeclaration(st)) aliases.set(st.name.text, st);
}

function typesOf(s: Schema): string[] {
  if (s.enum) return ['enum'];
  return s.type === undefined ? [] : Array.isArray(s.type) ? s.type : [s.type];
}

/** Compares a TS type with a schema; returns mismatch messages. */
function compareType(t: ts.TypeNode, s: Schema, path: string, baseFile: string): string[] {
  const { schema, key } = deref(s, baseFile);
  if (ts.isParenthesizedTypeNode(t)) return compareType(t.type, s, path, baseFile);
  if (ts.isTypeReferenceNode(t)) {
    const name = t.typeName.getText(source);
    if (interfaces.has(name)) {
      const expected = MAPPING[name];
      if (key !== expected) return [`${path}: TS says ${name}, schema $ref is ${key ?? '(inline)'}, expected ${expected}`];
      return [];
    }
    if (aliases.has(name)) return compareType(aliases.get(name)!.type, schema, path, baseFile);
    if (name === 'Record') {
      if (!typesOf(schema).includes('object') || typeof schema.additionalProperties !== 'object') {
        return [`${path}: Record<> must be an object schema with additionalProperties`];
      }
      return compareType(t.typeArguments![1], schema.additionalProperties, `${path}{}`, baseFile);
    }
    return [`${path}: unhandled TS type reference ${name}`];
  }
  if (ts.isTypeLiteralNode(t)) return compareMembers(t.members, schema, path, baseFile);
  if (ts.isArrayTypeNode(t)) {
    if (!typesOf(schema).includes('array') || !schema.items) return [`${path}: TS array, schema is not an array`];
    return compareType(t.elementType, schema.items, `${path}[]`, baseFile);
  }
  if (ts.isUnionTypeNode(t)) {
    const lits = t.types.filter(ts.isLiteralTypeNode).map((l) => (l.literal as ts.StringLiteral).text);
    if (lits.length === t.types.length) {
      const en = (schema.enum ?? []) as string[];
      return [...en].sort().join('|') === [...lits].sort().join('|') ? [] : [`${path}: enum ${en.join('|')} vs TS ${lits.join('|')}`];
    }
    // union of keyword types, e.g. string | number | boolean
    const kws = t.types.map((x) => (x.kind === ts.SyntaxKind.StringKeyword ? 'string' : x.kind === ts.SyntaxKind.NumberKeyword ? 'number' : x.kind === ts.SyntaxKind.BooleanKeyword ? 'boolean' : '?'));
    const st = typesOf(schema);
    return kws.every((k) => st.includes(k) || (k === 'number' && st.includes('integer'))) && st.length === kws.length ? [] : [`${path}: union ${kws.join('|')} vs schema ${st.join('|')}`];
  }
  const st = typesOf(schema);
  switch (t.kind) {
    case ts.SyntaxKind.StringKeyword:
      return st.includes('string') ? [] : [`${path}: TS string, schema ${st.join('|') || '(none)'}`];
    case ts.SyntaxKind.NumberKeyword:
      return st.includes('number') || st.includes('integer') ? [] : [`${path}: TS number, schema ${st.join('|') || '(none)'}`];
    case ts.SyntaxKind.BooleanKeyword:
      return st.includes('boolean') ? [] : [`${path}: TS boolean, schema ${st.join('|') || '(none)'}`];
    default:
      return [`${path}: unhandled TS type kind ${ts.SyntaxKind[t.kind]}`];
  }
}

function compareMembers(members: ts.NodeArray<ts.TypeElement>, schema: Schema, path: string, baseFile: string): string[] {
  const out: string[] = [];
  if (!typesOf(schema).includes('object')) out.push(`${path}: schema is not type object`);
  const props = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const seen = new Set<string>();
  for (const m of members) {
    if (!ts.isPropertySignature(m) || !m.type) continue;
    const name = m.name.getText(source);
    seen.add(name);
    const optional = m.questionToken !== undefined;
    if (!(name in props)) {
      out.push(`${path}.${name}: in TS, missing from schema properties`);
      continue;
    }
    if (optional && required.has(name)) out.push(`${path}.${name}: optional in TS, required in schema`);
    if (!optional && !required.has(name)) out.push(`${path}.${name}: required in TS, optional in schema`);
    out.push(...compareType(m.type, props[name], `${path}.${name}`, baseFile));
  }
  for (const name of Object.keys(props)) if (!seen.has(name)) out.push(`${path}.${name}: in schema, missing from TS`);
  for (const name of required) if (!(name in props)) out.push(`${path}.${name}: required but not a property`);
  return out;
}

describe('runner schemas ⇄ runner-protocol.ts', () => {
  it('maps every exported interface of runner-protocol.ts to a schema', () => {
    expect([...interfaces.keys()].sort()).toEqual(Object.keys(MAPPING).sort());
  });

  for (const [name, ref] of Object.entries(MAPPING)) {
    it(`${name} matches ${ref}`, () => {
      const file = ref.split('#')[0];
      const { schema } = resolvePointer(ref, file);
      expect(compareMembers(interfaces.get(name)!.members, schema, name, file)).toEqual([]);
    });
  }

  it('every schema file is draft 2020-12 with an $id and compiles', () => {
    for (const [f, s] of schemas) {
      expect([f, s.$schema]).toEqual([f, 'https://json-schema.org/draft/2020-12/schema']);
      expect(String(s.$id).endsWith(`/runner/${f}`)).toBe(true);
    }
    expect(runnerValidators().size).toBe(schemas.size - 1);
  });

  it('the comparison notices drift (a required member made optional, a missing property)', () => {
    const file = 'defs.json';
    const usage = resolvePointer('defs.json#/$defs/usage', file).schema;
    const drifted: Schema = { ...usage, required: ['inputTokens'], properties: { inputTokens: usage.properties!.inputTokens } };
    const problems = compareMembers(interfaces.get('Usage')!.members, drifted, 'Usage', file);
    expect(problems).toEqual(expect.arrayContaining([expect.stringContaining('Usage.outputTokens')]));
  });

  it('validators accept good messages and reject bad ones with value-free errors', () => {
    const v = runnerValidators();
    const request = { requestId: 'r1', modelId: 'm', prompt: 'SECRET-PROMPT', maxTokens: 8 };
    expect(v.get('infer-params')!({ request, stream: true, streamId: 's1' })).toBe(true);
    expect(v.get('infer-params')!({ request, stream: true })).toBe(false);
    expect(v.get('infer-params')!({ request: { ...request, maxTokens: 0 } })).toBe(false);
    const bad = v.get('infer-params')!;
    expect(bad({ request: { ...request, prompt: 42 } })).toBe(false);
    expect(bad.lastErrors().join(' ')).toContain('/request/prompt');
    expect(bad({ request: { ...request, maxTokens: 'SECRET-PROMPT' } })).toBe(false);
    expect(bad.lastErrors().join(' ')).not.toContain('SECRET-PROMPT');
    expect(v.get('initialize-params')!({ protocolVersion: '1', supervisor: { name: 's', version: '1' }, runnerId: 'x' })).toBe(false);
    expect(v.get('error-data')!({ code: 'request-cancelled', usage: { inputTokens: 3, outputTokens: 1 } })).toBe(true);
    expect(v.get('error-data')!({ code: 'Not Kebab' })).toBe(false);
    expect(v.get('infer-chunk-params')!({ streamId: 's', index: -1, delta: 'x' })).toBe(false);
    expect(v.get('log-params')!({ level: 'info', msg: 'm', fields: { a: 1, b: 'x', c: true } })).toBe(true);
    expect(v.get('log-params')!({ level: 'info', msg: 'm', fields: { a: { nested: 1 } } })).toBe(false);
  });
});

describe('docs/runner-protocol.md examples', () => {
  const doc = readFileSync(join(PACKAGE_ROOT, 'docs', 'runner-protocol.md'), 'utf8');
  const blocks = [...doc.matchAll(/```(json|text) ([^\n]+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1], info: m[2].trim(), body: m[3] }));

  it('has tagged examples for every message kind', () => {
    const infos = blocks.map((b) => b.info);
    for (const n of ['initialize-params', 'initialize-result', 'list-models-result', 'infer-params', 'infer-result', 'infer-chunk-params', 'estimate-params', 'estimate-result', 'health-result', 'log-params']) {
      expect(infos.some((i) => i.endsWith(`=${n}`))).toBe(true);
    }
    expect(infos.filter((i) => i === 'error-data').length).toBeGreaterThanOrEqual(2);
    expect(infos.filter((i) => i === 'frame').length).toBeGreaterThanOrEqual(3);
  });

  it('every JSON example is a JSON-RPC message whose params/result/error.data match the named schema', () => {
    const v = runnerValidators();
    for (const b of blocks.filter((x) => x.lang === 'json')) {
      const msg = JSON.parse(b.body) as { jsonrpc: string; params?: unknown; result?: unknown; error?: { code: number; data: { code: string } } };
      expect([b.info, msg.jsonrpc]).toEqual([b.info, '2.0']);
      let part: unknown;
      let schema: RunnerSchemaName;
      if (b.info === 'error-data') {
        part = msg.error!.data;
        schema = 'error-data';
        expect(isErrorCode(msg.error!.data.code)).toBe(true);
        expect([b.info, msg.error!.code]).toEqual([b.info, ERRORS[msg.error!.data.code as keyof typeof ERRORS].rpc]);
      } else {
        const [where, name] = b.info.split('=') as ['params' | 'result', RunnerSchemaName];
        part = msg[where];
        schema = name;
      }
      const check = v.get(schema)!;
      expect([b.info, check(part), check.lastErrors()]).toEqual([b.info, true, []]);
    }
  });

  it('every framed example has a Content-Length equal to the UTF-8 byte length of its body', () => {
    for (const b of blocks.filter((x) => x.info === 'frame')) {
      const [header, blank, body] = b.body.split('\n');
      const m = /^Content-Length: (\d+)\\r\\n$/.exec(header);
      expect(m).not.toBeNull();
      expect(blank).toBe('\\r\\n');
      expect([body, Buffer.byteLength(body, 'utf8')]).toEqual([body, Number(m![1])]);
      expect((JSON.parse(body) as { jsonrpc: string }).jsonrpc).toBe('2.0');
    }
  });

  it('the error table lists rpc numbers that agree with the catalogue', () => {
    const rows = [...doc.matchAll(/^\| (-\d+) \| (`[a-z-]+`(?:, `[a-z-]+`)*) \|/gm)];
    expect(rows.length).toBeGreaterThanOrEqual(14);
    // The one deliberate exception: an unexpected failure inside a runner is JSON-RPC's own
    // Internal error (-32603); data.code "runner-error" says what it means to the node.
    const internal: Record<string, number> = { 'runner-error': -32603 };
    for (const r of rows) {
      for (const code of r[2].match(/[a-z-]+/g)!) {
        expect([code, isErrorCode(code) ? (internal[code] ?? ERRORS[code].rpc) : 'unknown']).toEqual([code, Number(r[1])]);
      }
    }
  });
});
