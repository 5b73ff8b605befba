// pino as a module of its own: an entry point of the executable (see
// lib/log/index.ts), so that only a plugin exec that logs loads it.
export { pino } from 'pino';
