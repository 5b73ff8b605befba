// How dist/cnikit is compiled; the bench's floor program (an empty program
// compiled the same way) must use the same flags.
//
// No .env or bunfig.toml autoload: a plugin must not take settings from
// whatever directory the runtime execs it in, and looking for them (reading
// the directories up from the cwd) cost ~0.8 ms per exec, measured.
export const COMPILE_FLAGS = ['--compile', '--minify', '--bytecode', '--format=esm', '--no-compile-autoload-dotenv', '--no-compile-autoload-bunfig'];
