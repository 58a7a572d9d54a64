/**
 * Runner-side diagnostics: one JSON line per event on stderr (stdout carries the JSON-RPC stream and
 * must never see a stray byte). Callers pass only safe fields: never a prompt, an output, a backend
 * body or an API key.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export function logStderr(level: LogLevel, msg: string, fields: Record<string, string | number | boolean> = {}): void {
  if (level === 'debug' && !process.env.FEDAI_RUNNER_DEBUG) return;
  try {
    process.stderr.write(`${JSON.stringify({ level, time: Date.now(), component: 'runner-backend', msg, ...fields })}\n`);
  } catch {
    // stderr closed: nothing else to do
  }
}
