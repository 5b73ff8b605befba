// The `cnikit` command: an entry point of its own in dist/cnikit (see main.ts).
import { runCli } from './index.ts';

process.exit(await runCli(process.argv.slice(2)));
