// A detached child wired to pipes, and waiting on a pipe, answered as plain
// data so sys.test.ts can check that the node and bun adapters answer alike.
import type { Sys } from '../types.ts';

export function childAnswers(sys: Sys) {
  const te = new TextEncoder();
  const [inR, inW] = sys.pipe();
  const [outR, outW] = sys.pipe();
  // Nothing written yet: the wait runs out (and does wait: a 20 ms one takes at least 15).
  const t0 = performance.now();
  const readyBefore = sys.waitReadable(outR, 20);
  const waitedMs = performance.now() - t0;
  sys.write(inW, te.encode('ping'));
  sys.close(inW);
  sys.startDetached('/bin/cat', [], [inR, outW, null]);
  sys.close(inR);
  sys.close(outW);
  const readyAfter = sys.waitReadable(outR, 5000);
  const buf = new Uint8Array(16);
  const echoed = new TextDecoder().decode(buf.subarray(0, sys.read(outR, buf)));
  sys.close(outR);
  let missingThrows = false;
  try {
    sys.startDetached('/nonexistent/program', [], []);
  } catch (e) {
    // The node adapter throws SysError, Bun's spawn an Error of its own.
    missingThrows = e instanceof Error;
  }
  return { readyBefore, waitedAtLeast15: waitedMs >= 15, readyAfter, echoed, missingThrows };
}
