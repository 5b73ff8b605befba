// The bun adapter's answers as JSON for sys.test.ts; argv[2] is a scratch directory.
import { sys } from '../bun.ts';
import { fileAnswers } from './files.ts';
import { childAnswers } from './children.ts';

console.log(JSON.stringify({
  timeout: sys.run('/bin/sleep', ['5'], { timeoutMs: 200 }),
  missing: sys.run('/nonexistent/program', []),
  cat: sys.run('/bin/cat', [], { input: 'héllo' }),
  env: sys.run('/bin/sh', ['-c', 'echo "$FOO"; echo err >&2; exit 3'], { env: { FOO: 'bar' } }),
  hash: sys.sha256hex('a\0b'),
  strict: sys.setsockoptInt(sys.netlinkSocket(0), 270, 12, 1),
  unknownOption: sys.setsockoptInt(sys.netlinkSocket(0), 270, 999, 1),
  files: fileAnswers(sys, process.argv[2]!),
  children: childAnswers(sys),
}));
