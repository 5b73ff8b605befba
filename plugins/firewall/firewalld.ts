// Whether firewalld answers on the system D-Bus: asked only when a
// configuration names backend "firewalld" (an exec costs milliseconds).
import { exists } from '../../lib/fs/index.ts';
import { findTool } from '../../lib/firewall/exec.ts';
import { sys } from '../../lib/sys/index.ts';

const SYSTEM_BUS = '/run/dbus/system_bus_socket';

export function firewalldAnswers(): boolean {
  if (!exists(SYSTEM_BUS)) return false;
  const busctl = findTool('busctl');
  if (!busctl) return false;
  const r = sys.run(busctl, [
    '--system', '--timeout=2', 'call', 'org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
    'NameHasOwner', 's', 'org.fedoraproject.FirewallD1',
  ], { timeoutMs: 5000 });
  return !r.failure && r.status === 0 && r.stdout.trim() === 'b true';
}
