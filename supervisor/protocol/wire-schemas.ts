/**
 * The fed_AI wire schemas (schemas/*.json, JSON Schema draft 2020-12), compiled once with ajv at module
 * load. These validators are what /infer, heartbeats, receipts and the CLI use to decide "is this a
 * well-formed wire object" before any signature or business check.
 *
 * Result shape: `{ok:true, value}` or `{ok:false, details}` where each detail is
 * `"<instancePath>: <message>"` (e.g. `"/payload/maxTokens: must be >= 1"`), at most 20 of them —
 * the same strings that go out in a 400's `details`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { Envelope } from '../crypto/envelope.js';
import type {
  Capability,
  ErrorBody,
  InferenceRequest,
  InferenceResponse,
  MeteringRecord,
  ModelInfoWire,
  NodeDescriptor,
  PaymentReceipt,
  PaymentRequest,
  PaymentSplit,
  StreamChunk,
  StreamFinal,
} from './wire-types.js';

/** Payload kinds that travel inside a signed envelope. */
export type WireKind =
  | 'inference-request'
  | 'inference-response'
  | 'metering-record'
  | 'node-descriptor'
  | 'payment-request'
  | 'payment-receipt';

/** Every kind validateWire knows: the envelope payloads plus the unsigned wire objects. */
export type AnyWireKind =
  | WireKind
  | 'stream-chunk'
  | 'stream-final'
  | 'stream-error'
  | 'error-body'
  | 'capability'
  | 'model-info'
  | 'payment-split';

/** The TypeScript type each kind validates to. */
export interface WireTypeOf {
  'inference-request': InferenceRequest;
  'inference-response': InferenceResponse;
  'metering-record': MeteringRecord;
  'node-descriptor': NodeDescriptor;
  'payment-request': PaymentRequest;
  'payment-receipt': PaymentReceipt;
  'stream-chunk': StreamChunk;
  'stream-final': StreamFinal;
  'stream-error': ErrorBody;
  'error-body': ErrorBody;
  capability: Capability;
  'model-info': ModelInfoWire;
  'payment-split': PaymentSplit;
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; details: string[] };

export const WIRE_KINDS: readonly WireKind[] = [
  'inference-request',
  'inference-response',
  'metering-record',
  'node-descriptor',
  'payment-request',
  'payment-receipt',
];

export const ALL_WIRE_KINDS: readonly AnyWireKind[] = [
  ...WIRE_KINDS,
  'stream-chunk',
  'stream-final',
  'stream-error',
  'error-body',
  'capability',
  'model-info',
  'payment-split',
];

export const SCHEMA_BASE_URI = 'https://fedai.dev/schemas/';
export const MAX_DETAILS = 20;

/** Finds <root>/schemas from sources (<root>/supervisor/protocol) or the compiled tree (<root>/dist/supervisor/protocol). */
function findSchemasDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'schemas');
    if (existsSync(join(candidate, 'envelope.json'))) return candidate;
    const up = resolve(dir, '..');
    if (up === dir) break;
    dir = up;
  }
  throw new Error('fedai-node: schemas/ directory not found next to the package');
}

/** Absolute path of the top-level wire schemas directory. */
export const SCHEMAS_DIR: string = findSchemasDir();

/** Loads every top-level schemas/*.json (not schemas/runner/ nor the sandbox-profile schema). */
function loadSchemas(): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  for (const file of readdirSync(SCHEMAS_DIR).sort()) {
    if (!file.endsWith('.json') || file === 'sandbox-profile.json') continue;
    const schema = JSON.parse(readFileSync(join(SCHEMAS_DIR, file), 'utf8')) as Record<string, unknown>;
    if (schema.$id !== SCHEMA_BASE_URI + file) continue; // not one of ours
    out.set(file, schema);
  }
  return out;
}

type AddFormats = (ajv: Ajv2020) => Ajv2020;
const addFormats: AddFormats =
  ((addFormatsModule as unknown as { default?: AddFormats }).default ?? (addFormatsModule as unknown as AddFormats));

const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true, code: { optimize: true } });
addFormats(ajv);
const SCHEMAS = loadSchemas();
for (const schema of SCHEMAS.values()) ajv.addSchema(schema);

function compileRef(file: string): ValidateFunction {
  const v = ajv.getSchema(SCHEMA_BASE_URI + file);
  if (!v) throw new Error(`fedai-node: schema ${file} is missing from ${SCHEMAS_DIR}`);
  return v;
}

const wireValidators = new Map<AnyWireKind, ValidateFunction>();
for (const kind of ALL_WIRE_KINDS) wireValidators.set(kind, compileRef(`${kind}.json`));

const envelopeValidators = new Map<WireKind, ValidateFunction>();
for (const kind of WIRE_KINDS) {
  envelopeValidators.set(
    kind,
    ajv.compile({
      $id: `${SCHEMA_BASE_URI}envelope-of-${kind}.json`,
      type: 'object',
      $ref: 'envelope.json',
      properties: { payload: { $ref: `${kind}.json` } },
    }),
  );
}
const plainEnvelope = compileRef('envelope.json');

/** `"<instancePath>: <message>"`, at most MAX_DETAILS. */
export function formatErrors(errors: readonly ErrorObject[] | null | undefined): string[] {
  if (!errors || errors.length === 0) return ['/: is invalid'];
  const out: string[] = [];
  for (const e of errors) {
    if (out.length >= MAX_DETAILS) break;
    let msg = e.message ?? 'is invalid';
    if (e.keyword === 'additionalProperties') {
      msg += ` (${JSON.stringify((e.params as { additionalProperty?: string }).additionalProperty)})`;
    } else if (e.keyword === 'enum') {
      msg += `: ${(e.params as { allowedValues?: unknown[] }).allowedValues?.join(', ')}`;
    }
    const line = `${e.instancePath || '/'}: ${msg}`;
    if (!out.includes(line)) out.push(line);
  }
  return out;
}

function run<T>(validate: ValidateFunction, value: unknown): ValidationResult<T> {
  if (validate(value)) return { ok: true, value: value as T };
  return { ok: false, details: formatErrors(validate.errors) };
}

/** Validates a signed envelope whose payload must be of `kind`. Does not check the signature. */
export function validateEnvelopeOf<K extends WireKind>(kind: K, value: unknown): ValidationResult<Envelope<WireTypeOf[K]>> {
  const v = envelopeValidators.get(kind);
  if (!v) return { ok: false, details: [`/: unknown wire kind ${JSON.stringify(kind)}`] };
  return run<Envelope<WireTypeOf[K]>>(v, value);
}

/** Validates an envelope's outer shape only (any payload). */
export function validateEnvelope(value: unknown): ValidationResult<Envelope<unknown>> {
  return run<Envelope<unknown>>(plainEnvelope, value);
}

/** Validates a bare wire object (not wrapped in an envelope). */
export function validateWire<K extends AnyWireKind>(kind: K, value: unknown): ValidationResult<WireTypeOf[K]> {
  const v = wireValidators.get(kind);
  if (!v) return { ok: false, details: [`/: unknown wire kind ${JSON.stringify(kind)}`] };
  return run<WireTypeOf[K]>(v, value);
}

/** The parsed schema documents, by file name (read-only use: docs, tests). */
export function wireSchema(file: string): Readonly<Record<string, unknown>> | undefined {
  return SCHEMAS.get(file);
}
