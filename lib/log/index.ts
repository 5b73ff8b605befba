// Structured JSON logs to a file (config `logFile` or CNIKIT_LOG_FILE), never
// stdout: stdout is the CNI protocol. pino is loaded only when a file is set,
// so the plugin path does not pay for it.

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = (): void => undefined;
export const nullLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

export async function openLogger(file: string | undefined, bindings: Record<string, unknown>): Promise<Logger> {
  if (!file) return nullLogger;
  const { pino } = await import('pino');
  const dest = pino.destination({ dest: file, sync: true, mkdir: true });
  const p = pino({ level: process.env.CNIKIT_LOG_LEVEL ?? 'info', base: { pid: process.pid, ...bindings } }, dest);
  return {
    debug: (o, m) => p.debug(o, m),
    info: (o, m) => p.info(o, m),
    warn: (o, m) => p.warn(o, m),
    error: (o, m) => p.error(o, m),
  };
}
