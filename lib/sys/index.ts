// The runtime's adapter is chosen by the "#sys" import condition in
// package.json: "bun" for the compiled executable, the koffi one elsewhere.
export { sys } from '#sys';
export * from './types.ts';
