/**
 * Where the built-in runner host and the reference Python runner live, and the argv that starts them.
 * Works from TypeScript sources (tsx via scripts/register-ts.mjs) and from the compiled dist/ tree.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const THIS_FILE = fileURLToPath(import.meta.url);
/** True when this module runs from its .ts source (tsx, ts-jest) rather than from dist/. */
const FROM_SOURCES = THIS_FILE.endsWith('.ts');

/**
 * The repository (package) root. Sources: <root>/supervisor/runners/runner-command.ts;
 * compiled: <root>/dist/supervisor/runners/runner-command.js.
 */
export const PACKAGE_ROOT: string = FROM_SOURCES
  ? resolve(dirname(THIS_FILE), '..', '..')
  : resolve(dirname(THIS_FILE), '..', '..', '..');

/** Absolute argv that starts the built-in runner host (runner-host/main), adapter chosen by FEDAI_ADAPTER. */
export function runnerHostCommand(): string[] {
  if (FROM_SOURCES) {
    return [
      process.execPath,
      '--import',
      join(PACKAGE_ROOT, 'scripts', 'register-ts.mjs'),
      join(PACKAGE_ROOT, 'runner-host', 'main.ts'),
    ];
  }
  return [process.execPath, join(PACKAGE_ROOT, 'dist', 'runner-host', 'main.js')];
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * An absolute python3 outside /root (a sandboxed runner cannot read /root, where pyenv shims live):
 * /usr/bin/python3 when present, else the first python3 on PATH outside /root, else the first on PATH.
 */
export function findPython3(path: string = process.env.PATH ?? ''): string {
  if (isExecutable('/usr/bin/python3')) return '/usr/bin/python3';
  const candidates = path
    .split(delimiter)
    .filter((d) => d && isAbsolute(d))
    .map((d) => join(d, 'python3'))
    .filter(isExecutable);
  return candidates.find((c) => !c.startsWith('/root/')) ?? candidates[0] ?? 'python3';
}

/** Absolute path of the reference Python runner. */
export const PYTHON_RUNNER_PATH: string = join(PACKAGE_ROOT, 'runner-host', 'examples', 'python', 'fedai_runner.py');

/** Absolute argv that starts the reference Python runner (stdlib only). */
export function pythonRunnerCommand(): string[] {
  return [findPython3(), PYTHON_RUNNER_PATH];
}
