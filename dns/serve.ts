// `cnikit dns serve`: the resident responder of one host network namespace.
// Holds the responder lock for its whole life (handed over by the ADD that
// started it, or taken here when started by hand), follows the records
// directory (inotify, and SIGHUP for a reload by hand), and exits once no
// network has names left. Records are the whole state: a responder killed
// with -9 is replaced by the next ADD with every name intact.
import { watch, type FSWatcher } from 'node:fs';
import { sys, LOCK_EX, LOCK_NB, LOCK_UN, O_WRONLY, O_CREAT, O_APPEND } from '../lib/sys/index.ts';
import { writeFile, removeFile, readFileIfExists } from '../lib/fs/index.ts';
import { ensurePrivateDir } from '../lib/state/index.ts';
import { dnsRoot, recordsDir, lockPath, listRecords } from './records.ts';
import { Zones } from './zone.ts';
import { Forwarder, readUpstreams } from './forward.ts';
import { Responder } from './server.ts';

export interface ServeOptions {
  /** The records root (default: this host netns's under /run/cni/cnikit). */
  dir?: string;
  /** An fd holding the responder lock already (given by the ADD that started us). */
  lockFd?: number;
  /** Where the upstream resolvers are read from (default CNIKIT_DNS_RESOLV_CONF, else /etc/resolv.conf). */
  resolvConf?: string;
  port?: number;
  /** Per-upstream timeout. */
  upstreamTimeoutMs?: number;
}

const RELOAD_DEBOUNCE_MS = 20;
const RETRY_BIND_MS = 1000;

export function pidPath(root: string): string {
  return `${root}/responder.pid`;
}

/** Runs until no names are left; resolves with the exit status. */
export function serve(o: ServeOptions = {}): Promise<number> {
  const root = o.dir ?? dnsRoot();
  const resolvConf = o.resolvConf ?? process.env.CNIKIT_DNS_RESOLV_CONF ?? '/etc/resolv.conf';
  ensurePrivateDir(recordsDir(root));
  let lockFd = o.lockFd;
  if (lockFd === undefined) {
    lockFd = sys.open(lockPath(root), O_WRONLY | O_APPEND | O_CREAT, 0o600);
    if (!sys.flock(lockFd, LOCK_EX | LOCK_NB)) {
      sys.close(lockFd);
      process.stderr.write(`cnikit dns: a responder already serves ${root}\n`);
      return Promise.resolve(1);
    }
  }
  const fd = lockFd;
  // Started by a plugin: hold no directory of the runtime that happened to exec it.
  if (o.lockFd !== undefined) process.chdir('/');
  const responder = new Responder(new Forwarder([], o.upstreamTimeoutMs ?? 2000), o.port ?? 53);

  return new Promise((resolve) => {
    let watcher: FSWatcher | undefined;
    let debounce: ReturnType<typeof setTimeout> | undefined;
    let retry: ReturnType<typeof setInterval> | undefined;
    const stop = (status: number) => {
      watcher?.close();
      if (debounce) clearTimeout(debounce);
      if (retry) clearInterval(retry);
      process.off('SIGHUP', onHup);
      process.off('SIGTERM', onTerm);
      responder.close();
      // Only our own: a responder that took over in the meantime keeps its pid file.
      if ((readFileIfExists(pidPath(root)) ?? '').trim() === String(process.pid)) removeFile(pidPath(root));
      try {
        sys.close(fd);
      } catch {
        // already closed
      }
      resolve(status);
    };

    const load = (): boolean => {
      let records = listRecords(root);
      if (records.length === 0) {
        // Let go of the lock before the last look: an ADD that writes a record after
        // that look finds the lock free and starts a new responder, so no name is lost.
        sys.flock(fd, LOCK_UN);
        records = listRecords(root);
        if (records.length === 0 || !sys.flock(fd, LOCK_EX | LOCK_NB)) {
          stop(0);
          return false;
        }
      }
      const zones = new Zones(records);
      responder.zones = zones;
      responder.forwarder.upstreams = readUpstreams(resolvConf, zones.gateways());
      responder.reconcile();
      return true;
    };
    const reload = () => {
      if (debounce) clearTimeout(debounce);
      debounce = setTimeout(() => {
        debounce = undefined;
        load();
      }, RELOAD_DEBOUNCE_MS);
    };
    const onHup = () => reload();
    const onTerm = () => stop(0);
    process.on('SIGHUP', onHup);
    process.on('SIGTERM', onTerm);

    // Watch before the first load: a record written in between is seen by one or the other.
    try {
      watcher = watch(recordsDir(root), reload);
      // The directory itself removed (its state dir wiped): nothing left to serve.
      watcher.on('error', () => stop(0));
    } catch (e) {
      process.stderr.write(`cnikit dns: cannot watch ${recordsDir(root)}: ${(e as Error).message}\n`);
      stop(1);
      return;
    }
    if (!load()) return;
    writeFile(pidPath(root), `${process.pid}\n`, 0o600);
    retry = setInterval(() => {
      if (responder.unbound.length > 0) responder.retryFailed();
    }, RETRY_BIND_MS);
  });
}
