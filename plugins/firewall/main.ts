// The firewall executable: an entry point of its own in dist/cnikit (see main.ts).
import { runAndExit } from '../../lib/skel/main.ts';
import { firewallPlugin } from './index.ts';

await runAndExit(firewallPlugin);
