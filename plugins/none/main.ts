// The none and loopback executables: an entry point of its own in dist/cnikit (see main.ts).
import { runAndExit } from '../../lib/skel/main.ts';
import { nonePlugin } from './index.ts';

await runAndExit(nonePlugin);
