// host (Docker's --net host): CNI_NETNS must be the host's own namespace,
// and a published port already bound on the host is refused.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { Lab } from './lab.ts';
import { bin, BIN } from './dist.ts';
import { validateResult } from '../lib/spec/validators.gen.js';

let lab: Lab;
const listeners: ChildProcess[] = [];

beforeAll(() => {
  lab = Lab.create();
  // A veth end stands in for a host NIC (the dummy module may be absent).
  lab.ip(['link', 'add', 'nic0', 'type', 'veth', 'peer', 'name', 'nic1']);
  lab.ip(['addr', 'add', '192.0.2.10/24', 'dev', 'nic0']);
  lab.ip(['link', 'set', 'nic0', 'up']);
});
afterAll(() => {
  for (const l of listeners) l.kill('SIGKILL');
  lab.destroy();
});

/** A socket bound inside the lab host, held until the test run ends. */
async function listen(proto: 'tcp' | 'udp', address: string, port: number): Promise<void> {
  const code =
    proto === 'tcp'
      ? `require('net').createServer().listen(${port}, '${address}', () => console.log('ready'))`
      : `require('dgram').createSocket('${address.includes(':') ? 'udp6' : 'udp4'}').bind(${port}, '${address}', () => console.log('ready'))`;
  const child = spawn('nsenter', [`--net=${lab.hostPath}`, '--', process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  listeners.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`listener exited ${c}`)));
  });
}

function add(netns: string, portMappings?: object[]) {
  const config = {
    cniVersion: '1.1.0',
    name: 'host',
    type: 'host',
    capabilities: { portMappings: true },
    ...(portMappings ? { runtimeConfig: { portMappings } } : {}),
  };
  const r = lab.plugin(bin('host'), { command: 'ADD', containerId: 'h1', netns, ifname: 'eth0', path: BIN, config });
  return { status: r.status, out: JSON.parse(r.stdout || 'null') };
}

describe('host', () => {
  it("ADD with the host's namespace lists the host's interfaces and addresses", () => {
    const r = add(lab.hostPath);
    expect(r.status).toBe(0);
    expect(validateResult(r.out)).toBe(true);
    const names = r.out.interfaces.map((i: { name: string }) => i.name);
    expect(names).toEqual(expect.arrayContaining(['lo', 'nic0']));
    const nic = names.indexOf('nic0');
    expect(r.out.ips).toContainEqual({ address: '192.0.2.10/24', interface: nic });
    for (const i of r.out.interfaces) expect(i.sandbox).toBeUndefined();
  });

  it('ADD with any other namespace fails naming it, and CHECK too', () => {
    const netns = lab.container();
    const r = add(netns);
    expect(r.status).not.toBe(0);
    expect(r.out.code).toBe(4);
    expect(r.out.msg).toContain(`${netns} is not the host's network namespace`);
    const c = lab.plugin(bin('host'), { command: 'CHECK', containerId: 'h1', netns, ifname: 'eth0', path: BIN, config: { cniVersion: '1.1.0', name: 'host', type: 'host' } });
    expect(JSON.parse(c.stdout).code).toBe(4);
  });

  it('refuses a TCP port already bound on the host, naming it', async () => {
    await listen('tcp', '0.0.0.0', 18080);
    const r = add(lab.hostPath, [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }]);
    expect(r.status).not.toBe(0);
    expect(r.out.code).toBe(102);
    expect(r.out.msg).toContain('18080/tcp');
    // Same port over UDP, and another TCP port, are free.
    expect(add(lab.hostPath, [{ hostPort: 18080, containerPort: 80, protocol: 'udp' }]).status).toBe(0);
    expect(add(lab.hostPath, [{ hostPort: 18081, containerPort: 80, protocol: 'tcp' }]).status).toBe(0);
  });

  it('matches host addresses: a socket on one address does not block another', async () => {
    await listen('udp', '192.0.2.10', 5353);
    const same = add(lab.hostPath, [{ hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '192.0.2.10' }]);
    expect(same.out.code).toBe(102);
    const wildcard = add(lab.hostPath, [{ hostPort: 5353, containerPort: 53, protocol: 'udp' }]);
    expect(wildcard.out.code).toBe(102);
    expect(add(lab.hostPath, [{ hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' }]).status).toBe(0);
  });

  it('sees IPv6 listeners', async () => {
    await listen('tcp', '::', 18443);
    expect(add(lab.hostPath, [{ hostPort: 18443, containerPort: 443 }]).out.code).toBe(102);
  });

  it('DEL, GC and STATUS succeed and change nothing', () => {
    const before = lab.ip(['-j', 'addr']);
    for (const command of ['DEL', 'GC', 'STATUS']) {
      const r = lab.plugin(bin('host'), { command, containerId: 'h1', ifname: 'eth0', path: BIN, config: { cniVersion: '1.1.0', name: 'host', type: 'host' } });
      expect(r.status).toBe(0);
      expect(r.stdout).toBe('');
    }
    expect(lab.ip(['-j', 'addr'])).toBe(before);
  });
});
