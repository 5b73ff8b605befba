// Types generated from the JSON Schemas, and a readable message for a failed
// validation. Validators are precompiled (validators.gen.js): nothing is
// compiled at plugin start.
import type { ErrorObject, ValidateFunction } from 'ajv';

export type * from './types.gen.ts';

/** Undefined when data is valid, else one sentence naming the field and the value found. */
export function validationError(validate: ValidateFunction, data: unknown): string | undefined {
  if (validate(data)) return undefined;
  const err: ErrorObject | undefined = validate.errors?.[0];
  if (!err) return 'invalid configuration';
  const field = fieldName(err);
  const value = valueAt(data, err.instancePath);
  let what = err.message ?? 'is invalid';
  if (err.keyword === 'enum') what += ` (${(err.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')})`;
  if (err.keyword === 'required') return `${field} is required`;
  return `${field} ${what}, got ${JSON.stringify(value)}`;
}

function fieldName(err: ErrorObject): string {
  const path = err.instancePath.split('/').slice(1).map(unescape).join('.');
  if (err.keyword === 'required') {
    const missing = (err.params as { missingProperty: string }).missingProperty;
    return `"${path ? `${path}.` : ''}${missing}"`;
  }
  return path ? `"${path}"` : 'the configuration';
}

function unescape(seg: string): string {
  return seg.replace(/~1/g, '/').replace(/~0/g, '~');
}

function valueAt(data: unknown, pointer: string): unknown {
  let cur = data;
  for (const seg of pointer.split('/').slice(1)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[unescape(seg)];
  }
  return cur;
}
