// Structured JSON logs to a file (config `logFile` or CNIKIT_LOG_FILE), never
// stdout: stdout is the CNI protocol. pino is loaded only when a file is set,
// so the plugin path does not pay for it.
import { sys } from '../sys/index.ts';

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = (): void => undefined;
export const nullLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/**
 * pino, loaded when a log file is set. In the executable it is an entry point
 * of its own (scripts/build.ts), imported by its embedded path: a plugin
 * bundle that carried it would load it in every exec (~0.3 ms, measured).
 * The specifier is computed, so the bundler cannot inline it.
 */
async function loadPino(): Promise<typeof import('./pino.ts').pino> {
  const spec = sys.embeddedModule('lib/log/pino.ts') ?? './pino.ts';
  return ((await import(spec)) as typeof import('./pino.ts')).pino;
}

export async function openLogger(file: string | undefined, bindings: Record<string, unknown>): Promise<Logger> {
  if (!file) return nullLogger;
  const pino = await loadPino();
  const dest = pino.destination({ dest: file, sync: true, mkdir: true });
  const p = pino({ level: process.env.CNIKIT_LOG_LEVEL ?? 'info', base: { pid: process.pid, ...bindings } }, dest);
  return {
    debug: (o, m) => p.debug(o, m),
    info: (o, m) => p.info(o, m),
    warn: (o, m) => p.warn(o, m),
    error: (o, m) => p.error(o, m),
  };
}
