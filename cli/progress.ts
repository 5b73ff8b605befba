// Anything that takes more than a second says what it is doing, on a
// terminal's stderr (scripts reading stdout are not disturbed).
export async function withProgress<T>(label: string, fn: () => T | Promise<T>): Promise<T> {
  if (!process.stderr.isTTY) return fn();
  const start = Date.now();
  const timer = setInterval(() => process.stderr.write(`\r${label}… ${Math.round((Date.now() - start) / 1000)}s`), 1000);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    if (Date.now() - start >= 1000) process.stderr.write('\r\x1b[K');
  }
}
