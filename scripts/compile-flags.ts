// How dist/cnikit is compiled; the bench's floor program (an empty program
// compiled the same way) must use the same flags.
//
// No .env or bunfig.toml autoload: a plugin must not take settings from
// whatever directory the runtime execs it in, and looking for them (reading
// the directories up from the cwd) cost ~0.8 ms per exec, measured.
//
// JIT tier-up thresholds x1000: a plugin exec lives ~10 ms and runs most of
// its code once, so compiling it is wasted work; the whole chain ADD was ~10%
// faster with it, measured side by side.
export const COMPILE_FLAGS = [
  '--compile', '--minify', '--bytecode', '--format=esm', '--no-compile-autoload-dotenv', '--no-compile-autoload-bunfig',
  '--compile-jit-policy=1000',
];
