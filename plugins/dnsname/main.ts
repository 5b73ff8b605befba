// The dnsname executable: an entry point of its own in dist/cnikit (see main.ts).
import { runAndExit } from '../../lib/skel/main.ts';
import { dnsnamePlugin } from './index.ts';

await runAndExit(dnsnamePlugin);
