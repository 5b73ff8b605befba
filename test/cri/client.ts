// A CRI v1 client, as kubelet talks to containerd: unary gRPC calls over the
// runtime's unix socket, messages from runtime_v1.proto (the subset of the
// upstream API this project uses). Field names are the proto-loader's
// camelCase; enums arrive as their names, int64 as strings.
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const PROTO = join(dirname(fileURLToPath(import.meta.url)), 'runtime_v1.proto');

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface PortMapping {
  protocol?: Protocol;
  containerPort: number;
  hostPort: number;
  hostIp?: string;
}

export interface PodSandboxConfig {
  metadata: { name: string; uid: string; namespace: string; attempt?: number };
  hostname?: string;
  logDirectory?: string;
  dnsConfig?: { servers?: string[]; searches?: string[]; options?: string[] };
  portMappings?: PortMapping[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: { cgroupParent?: string };
}

export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: { image: string };
  command?: string[];
  args?: string[];
  logPath?: string;
}

export type SandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';

export interface PodSandboxStatus {
  id: string;
  state: SandboxState;
  network?: { ip: string; additionalIps: { ip: string }[] } | null;
}

export interface PodSandbox {
  id: string;
  metadata?: { name: string; namespace: string } | null;
  state: SandboxState;
  labels: Record<string, string>;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** A failed call: the gRPC status code and the runtime's message. */
export class CriError extends Error {
  constructor(
    readonly method: string,
    readonly code: number,
    readonly details: string,
  ) {
    super(`${method}: ${details} (gRPC code ${code})`);
    this.name = 'CriError';
  }
}

type Methods = Record<string, MethodDefinition<object, object>>;

function serviceMethods(pkg: ReturnType<typeof loadSync>, name: string): Methods {
  const def = pkg[`runtime.v1.${name}`];
  if (!def || 'format' in def) throw new Error(`runtime_v1.proto lacks service ${name}`);
  return def as unknown as Methods;
}

let loaded: { runtime: Methods; image: Methods } | undefined;

function definitions(): { runtime: Methods; image: Methods } {
  if (!loaded) {
    const pkg = loadSync(PROTO, { longs: String, enums: String, defaults: true, arrays: true, objects: false });
    loaded = { runtime: serviceMethods(pkg, 'RuntimeService'), image: serviceMethods(pkg, 'ImageService') };
  }
  return loaded;
}

export class CriClient {
  private readonly client: Client;
  private readonly defs = definitions();

  /** socket: the runtime's gRPC unix socket path. */
  constructor(
    socket: string,
    private readonly timeoutMs = 60_000,
  ) {
    this.client = new Client(`unix://${socket}`, credentials.createInsecure());
  }

  close(): void {
    this.client.close();
  }

  private call<Res>(methods: Methods, method: string, req: object): Promise<Res> {
    const def = methods[method];
    if (!def) throw new Error(`runtime_v1.proto lacks ${method}`);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        def.path,
        def.requestSerialize,
        def.responseDeserialize,
        req,
        { deadline: Date.now() + this.timeoutMs },
        (err: ServiceError | null, res?: object) => {
          if (err) reject(new CriError(method, err.code, err.details));
          else resolve(res as Res);
        },
      );
    });
  }

  version(): Promise<{ runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    return this.call(this.defs.runtime, 'Version', { version: 'v1' });
  }

  async runPodSandbox(config: PodSandboxConfig): Promise<string> {
    const r = await this.call<{ podSandboxId: string }>(this.defs.runtime, 'RunPodSandbox', { config });
    return r.podSandboxId;
  }

  async stopPodSandbox(podSandboxId: string): Promise<void> {
    await this.call(this.defs.runtime, 'StopPodSandbox', { podSandboxId });
  }

  async removePodSandbox(podSandboxId: string): Promise<void> {
    await this.call(this.defs.runtime, 'RemovePodSandbox', { podSandboxId });
  }

  /** verbose: the runtime's info map (containerd: "info", a JSON document with the sandbox's pid, netns path, CNI result). */
  async podSandboxStatus(podSandboxId: string, verbose = false): Promise<{ status: PodSandboxStatus; info: Record<string, string> }> {
    return this.call(this.defs.runtime, 'PodSandboxStatus', { podSandboxId, verbose });
  }

  async listPodSandbox(): Promise<PodSandbox[]> {
    const r = await this.call<{ items: PodSandbox[] }>(this.defs.runtime, 'ListPodSandbox', {});
    return r.items;
  }

  async createContainer(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    const r = await this.call<{ containerId: string }>(this.defs.runtime, 'CreateContainer', { podSandboxId, config, sandboxConfig });
    return r.containerId;
  }

  async startContainer(containerId: string): Promise<void> {
    await this.call(this.defs.runtime, 'StartContainer', { containerId });
  }

  /** Runs cmd in the container (timeout in seconds) and returns its output. */
  async execSync(containerId: string, cmd: string[], timeout = 10): Promise<ExecResult> {
    const r = await this.call<{ stdout: Buffer; stderr: Buffer; exitCode: number }>(this.defs.runtime, 'ExecSync', { containerId, cmd, timeout: String(timeout) });
    return { stdout: r.stdout.toString(), stderr: r.stderr.toString(), exitCode: r.exitCode };
  }

  async listImages(): Promise<{ id: string; repoTags: string[] }[]> {
    const r = await this.call<{ images: { id: string; repoTags: string[] }[] }>(this.defs.image, 'ListImages', {});
    return r.images;
  }
}
