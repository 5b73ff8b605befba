// VERSION for any plugin of the executable, without loading the plugin: an
// entry point of its own in dist/cnikit, chosen by main.ts.
import { sys } from '../sys/index.ts';
import { readFd, writeAll, isCharacterDevice } from '../fs/index.ts';
import { runVersion } from './version-command.ts';

// As lib/skel's processIo (not imported: that would load the skel whole).
sys.exit(runVersion({
  env: process.env,
  readStdin: () => (isCharacterDevice(0) ? '' : readFd(0)),
  writeStdout: (text) => writeAll(1, text),
}));
