// What the firewall needs for every attachment still alive on this host, as
// the plugins' records say. The records belong to the plugins (bridge,
// portmap), so a plugin registers where to read them; the backends ask when
// they find their own table or base chains gone (a `nft flush ruleset`, a
// firewalld reload, an iptables service restart), so that the ADD or DEL that
// notices rebuilds every live attachment's rules, not only its own.
import type { AttachmentKey, Backend, SetupOp } from './types.ts';

/** The setup operations of every live attachment of `backend` but `exclude` (the one a DEL is removing). */
export type LiveAttachments = (backend: Backend, exclude?: AttachmentKey) => SetupOp[];

let source: LiveAttachments | undefined;

export function setLiveAttachments(s: LiveAttachments | undefined): void {
  source = s;
}

/** Never throws: a record that cannot be read must not fail the ADD or DEL that asked. */
export function liveOps(backend: Backend, exclude?: AttachmentKey): SetupOp[] {
  if (!source) return [];
  try {
    return source(backend, exclude);
  } catch {
    return [];
  }
}
