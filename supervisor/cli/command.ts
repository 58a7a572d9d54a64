/**
 * The shape every CLI command implements (fedai and fedai-node). Commands never call process.exit:
 * they return an exit code (0 ok, 1 failure/leak/verification error, 2 usage error) and write through
 * the given io, so tests run them in-process. Machine-readable output with --json.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** Aborted on SIGINT/SIGTERM. */
  readonly signal?: AbortSignal;
}

export interface CliCommand {
  /** e.g. "keygen" or "metering verify". */
  readonly name: string;
  readonly summary: string;
  /** Full --help text. */
  readonly usage: string;
  run(args: string[], io: CliIO): Promise<number>;
}

export const EXIT_OK = 0;
export const EXIT_FAIL = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** node:util parseArgs with strict checking; unknown flags become a UsageError. */
export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function writeJson(io: CliIO, value: unknown): void {
  io.stdout(JSON.stringify(value, null, 2) + '\n');
}
