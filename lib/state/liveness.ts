// Whether the container an attachment record describes is provably gone, so
// that what it holds (a host port, a requested address) can be reclaimed
// instead of refused. Only certain proof counts: the recorded netns path is
// missing or is no network namespace any more, and the host end of its veth
// (when one is recorded) no longer exists in this namespace. A namespace can
// outlive its path (a process still in it), but then its veth is still here.
import { inspectNetns, NetnsError } from '../netns/index.ts';

export interface HolderTrace {
  /** CNI_NETNS of the holder's ADD. */
  netns?: string;
  /** The host end of the holder's veth, in the plugin's own namespace. */
  hostVeth?: string;
}

/**
 * Why the holder is gone, or undefined when it may be alive (or no proof can
 * be had). `hasLink` looks a link up by name in the plugin's namespace; it is
 * asked only once the netns is known to be gone.
 */
export function goneReason(t: HolderTrace, hasLink: (name: string) => boolean): string | undefined {
  if (!t.netns) return undefined;
  let why: string;
  try {
    inspectNetns(t.netns);
    return undefined;
  } catch (e) {
    if (!(e instanceof NetnsError) || e.reason === 'other') return undefined;
    why = e.reason === 'missing' ? `its netns ${t.netns} is gone` : `${t.netns} is no network namespace any more`;
  }
  if (t.hostVeth) {
    if (hasLink(t.hostVeth)) return undefined;
    why += ` and its host veth ${t.hostVeth} is gone`;
  }
  return why;
}
