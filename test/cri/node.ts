// A Kubernetes node without kubelet: containerd (with its built-in CRI
// plugin) in a network namespace of the lab, and in a mount namespace of its
// own in which the test's directory is bound over /run and /var/lib. So the
// paths a node uses by default — pod netns under /run/netns, go-cni's result
// cache under /var/lib/cni/results, host-local's leases under
// /var/lib/cni/networks, cnikit's records under /run/cni/cnikit, runc's and
// the shims' state under /run/containerd — all land in the test's directory,
// and every mount the node makes (overlay rootfs, netns bind mounts) dies
// with its processes. The conflist is the one a node operator writes; no
// path in it is bent for the test.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CriClient, type PodSandboxConfig } from './client.ts';
import { removeCgroupTree } from './sweep.ts';
import { IMAGE } from './image.ts';

export interface NodeOptions {
  /** Short name, unique in the run (cgroup parent, log file). */
  name: string;
  /** The node's network namespace (path). */
  netns: string;
  /** A directory of the test's own; the node keeps everything in it. */
  dir: string;
  /** CNI bin_dir. */
  binDir: string;
  /** The conflist in conf_dir. */
  conflist: object;
}

function sh(cmd: string, args: string[], timeout = 60_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function must(cmd: string, args: string[]): string {
  const r = sh(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function config(o: NodeOptions, d: NodeDirs): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = "${d.root}"
state = "${d.state}"

[grpc]
  address = "${d.socket}"

[ttrpc]
  address = "${d.socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(o.dir, 'opt')}"

[${cri}]
  sandbox_image = "${IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which CI sandboxes may lack.
  restrict_oom_score_adj = true

[${cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[${cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[${cri}.cni]
  bin_dir = "${o.binDir}"
  conf_dir = "${d.netd}"
  max_conf_num = 1
`;
}

interface NodeDirs {
  root: string;
  state: string;
  socket: string;
  netd: string;
  run: string;
  varlib: string;
}

export class ContainerdNode {
  readonly cri: CriClient;
  /** Pod sandboxes get this cgroup parent, so the run's cgroups are found and removed. */
  readonly cgroupParent: string;
  private constructor(
    readonly options: NodeOptions,
    readonly dirs: NodeDirs,
    private readonly holder: ChildProcess,
    private readonly daemon: ChildProcess,
  ) {
    this.cri = new CriClient(dirs.socket);
    this.cgroupParent = `/${options.name}`;
  }

  /** The node's /run (seen from outside its mount namespace). */
  get run(): string {
    return this.dirs.run;
  }

  /** The node's /var/lib (seen from outside its mount namespace). */
  get varLib(): string {
    return this.dirs.varlib;
  }

  get mountNs(): string {
    return `/proc/${this.holder.pid}/ns/mnt`;
  }

  static async start(o: NodeOptions): Promise<ContainerdNode> {
    const d: NodeDirs = {
      root: join(o.dir, 'root'),
      state: join(o.dir, 'state'),
      socket: join(o.dir, 'containerd.sock'),
      netd: join(o.dir, 'net.d'),
      run: join(o.dir, 'run'),
      varlib: join(o.dir, 'varlib'),
    };
    for (const p of [d.root, d.state, d.netd, d.run, d.varlib]) mkdirSync(p, { recursive: true, mode: 0o711 });
    writeFileSync(join(d.netd, '10-pods.conflist'), JSON.stringify(o.conflist, null, 2));
    const cfg = join(o.dir, 'config.toml');
    writeFileSync(cfg, config(o, d));

    // The mount namespace is held by a sleep, so that the binds exist before containerd starts.
    const holder = spawn('unshare', ['--mount', '--propagation', 'slave', '--', 'sleep', '2147483647'], { stdio: 'ignore' });
    let daemon: ChildProcess | undefined;
    try {
      await waitFor(() => holder.pid !== undefined && readlinkSync(`/proc/${holder.pid}/ns/mnt`) !== readlinkSync('/proc/self/ns/mnt'), 5_000, 'the mount namespace');
      const mnt = `/proc/${holder.pid}/ns/mnt`;
      must('nsenter', [`--mount=${mnt}`, '--', 'mount', '--bind', d.run, '/run']);
      must('nsenter', [`--mount=${mnt}`, '--', 'mount', '--bind', d.varlib, '/var/lib']);
      const log = openSync(join(o.dir, 'containerd.log'), 'a');
      // nsenter opens both namespaces before entering either: the lab's netns path resolves outside.
      daemon = spawn('nsenter', [`--mount=${mnt}`, `--net=${o.netns}`, '--', 'containerd', '--config', cfg], { stdio: ['ignore', log, log] });
      closeSync(log);
      const node = new ContainerdNode(o, d, holder, daemon);
      const exited = new Promise<never>((_, reject) => daemon!.once('exit', (c) => reject(new Error(`containerd of ${o.name} exited (${c}); see ${join(o.dir, 'containerd.log')}`))));
      exited.catch(() => undefined);
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          await Promise.race([node.cri.version(), exited]);
          break;
        } catch (e) {
          if (Date.now() > deadline || daemon.exitCode !== null) throw e;
          await sleep(200);
        }
      }
      return node;
    } catch (e) {
      daemon?.kill('SIGKILL');
      holder.kill('SIGKILL');
      throw e;
    }
  }

  /** Imports an OCI layout tar into the CRI's image namespace. */
  importImage(tar: string): void {
    must('ctr', ['--address', this.dirs.socket, '--namespace', 'k8s.io', 'images', 'import', '--snapshotter', 'overlayfs', tar]);
  }

  /** A pod config as kubelet sends it, with this node's cgroup parent. */
  podConfig(name: string, extra: Partial<PodSandboxConfig> = {}): PodSandboxConfig {
    return {
      metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 },
      hostname: name,
      linux: { cgroupParent: this.cgroupParent },
      labels: { app: name },
      ...extra,
    };
  }

  /** Runs a command in the node (its network and mount namespaces). */
  exec(cmd: string, args: string[], timeout = 30_000): { status: number | null; stdout: string; stderr: string } {
    return sh('nsenter', [`--mount=${this.mountNs}`, `--net=${this.options.netns}`, '--', cmd, ...args], timeout);
  }

  /** Stops and removes every pod, then the daemon, its shims and their containers; removes the pods' cgroups. */
  async destroy(): Promise<void> {
    try {
      if (this.daemon.exitCode === null) {
        const pods = await this.cri.listPodSandbox().catch(() => []);
        for (const p of pods) {
          await this.cri.stopPodSandbox(p.id).catch(() => undefined);
          await this.cri.removePodSandbox(p.id).catch(() => undefined);
        }
      }
    } finally {
      this.cri.close();
      await this.kill();
      // Pause and app containers have mount namespaces of their own: found by their cgroups.
      await removeCgroupTree(this.cgroupParent.slice(1));
    }
  }

  private async kill(): Promise<void> {
    const mnt = (() => {
      try {
        return readlinkSync(this.mountNs);
      } catch {
        return undefined;
      }
    })();
    if (this.daemon.exitCode === null) {
      this.daemon.kill('SIGTERM');
      await waitFor(() => this.daemon.exitCode !== null || this.daemon.signalCode !== null, 5_000, 'containerd to exit').catch(() => this.daemon.kill('SIGKILL'));
    }
    // The shims live in the node's mount namespace (they were started from it).
    if (mnt) {
      for (let round = 0; round < 20; round++) {
        const left = processesIn(mnt, this.holder.pid);
        if (left.length === 0) break;
        for (const pid of left) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
        await sleep(100);
      }
    }
    this.holder.kill('SIGKILL');
    await waitFor(() => this.holder.exitCode !== null || this.holder.signalCode !== null, 5_000, 'the mount holder to exit').catch(() => undefined);
  }
}

/** Pids (other than except) whose mount namespace is mnt. */
function processesIn(mnt: string, except: number | undefined): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid === except) continue;
    try {
      if (readlinkSync(`/proc/${pid}/ns/mnt`) === mnt) out.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

async function waitFor(ok: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}
