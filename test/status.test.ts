// STATUS as a runtime asks it (SPEC: "not available", code 50, while an ADD
// could not succeed): host-local with its ranges exhausted, and bridge, which
// asks its IPAM. Ready again once an address is free. (The reference answers
// ready whatever is leased.)
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { Lab } from './lab.ts';
import { bin, BIN } from './dist.ts';

let lab: Lab;
let netns: string;
beforeAll(() => {
  lab = Lab.create();
  netns = lab.container();
});
afterAll(() => lab?.destroy());

type Out = { code?: number; msg?: string; ips?: { address: string }[] };

function run(binary: string, command: string, conf: object, id = 'c1', ifname = 'eth0') {
  const r = lab.plugin(bin(binary), { command, containerId: id, netns, ifname, path: BIN, config: conf });
  return { status: r.status, out: r.stdout ? (JSON.parse(r.stdout) as Out) : undefined };
}

describe('STATUS reports an exhausted address pool', () => {
  it('host-local: 50 while every address of a range set is leased, ready again after a DEL', () => {
    const conf = {
      cniVersion: '1.1.0',
      name: 'st-hl',
      type: 'host-local',
      // Two addresses in the first set (.1 is the gateway, never leased), plenty in the second.
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: '10.81.0.0/29', rangeStart: '10.81.0.1', rangeEnd: '10.81.0.3' }], [{ subnet: 'fd00:81::/64' }]],
        dataDir: join(lab.dir, 'hl'),
      },
    };
    expect(run('host-local', 'STATUS', conf).status).toBe(0);
    expect(run('host-local', 'ADD', conf, 'a').out?.ips?.[0]?.address).toBe('10.81.0.2/29');
    expect(run('host-local', 'STATUS', conf).status).toBe(0);
    expect(run('host-local', 'ADD', conf, 'b').out?.ips?.[0]?.address).toBe('10.81.0.3/29');
    const full = run('host-local', 'STATUS', conf);
    expect(full.status).not.toBe(0);
    expect(full.out).toMatchObject({ code: 50, msg: expect.stringContaining('10.81.0.1-10.81.0.3') });
    // What STATUS promised: an ADD now fails.
    expect(run('host-local', 'ADD', conf, 'c').out?.code).toBe(101);
    expect(run('host-local', 'DEL', conf, 'a').status).toBe(0);
    expect(run('host-local', 'STATUS', conf).status).toBe(0);
    expect(run('host-local', 'ADD', conf, 'c').out?.ips?.[0]?.address).toBe('10.81.0.2/29');
  });

  it('bridge: answers its IPAM\'s 50, ready again once an address is free', () => {
    const conf = {
      cniVersion: '1.1.0',
      name: 'st-br',
      type: 'bridge',
      bridge: 'st-br0',
      isGateway: true,
      dataDir: join(lab.dir, 'br'),
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.82.0.0/30' }]], dataDir: join(lab.dir, 'br-leases') },
    };
    expect(run('bridge', 'STATUS', conf).status).toBe(0);
    const c1 = run('bridge', 'ADD', conf, 'c1');
    expect(c1.out?.ips?.[0]?.address).toBe('10.82.0.2/30');
    const full = run('bridge', 'STATUS', conf);
    expect(full.out).toMatchObject({ code: 50, msg: expect.stringContaining('no free address') });
    expect(run('bridge', 'DEL', conf, 'c1').status).toBe(0);
    expect(run('bridge', 'STATUS', conf).status).toBe(0);
  });
});
