// Go-style keys: a config or capability argument written with Go struct field
// names reaches the plugin under the schema's names, as Go's encoding/json
// would decode it; and the input a DEL must tolerate.
import { describe, it, expect } from 'vitest';
import { runPlugin, type Plugin, type Io, type Context } from './index.ts';
import { normalizeKeys } from '../spec/keys.ts';
import { keysBridgeConf, keysPortmapConf, keysHostLocalConf, keysResult, keyTreeOfValidator } from '../spec/keys.gen.js';
import { validateBridgeConf, validatePortmapConf, validateNoneConf } from '../spec/validators.gen.js';
import type { NetConf, BridgeConf, PortmapConf } from '../spec/index.ts';

function io(env: NodeJS.ProcessEnv, stdin: string): Io & { out: string[] } {
  const out: string[] = [];
  return { env, readStdin: () => stdin, writeStdout: (t) => void out.push(t), out };
}

/** A plugin that keeps what its command saw. */
function recorder<C extends NetConf>(validate: Plugin<C>['validate']): { plugin: Plugin<C>; seen: Context<C>[] } {
  const seen: Context<C>[] = [];
  const keep = (ctx: Context<C>) => void seen.push(ctx);
  const plugin: Plugin<C> = {
    name: 'recorder',
    validate,
    keys: keyTreeOfValidator.get(validate),
    netns: 'any',
    add: (ctx) => {
      keep(ctx);
      return { cniVersion: '1.1.0' };
    },
    check: keep,
    del: keep,
    gc: keep,
    status: keep,
  };
  return { plugin, seen };
}

const ENV = { CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_PATH: '/x', CNI_NETNS: '/run/netns/x' };

async function run<C extends NetConf>(validate: Plugin<C>['validate'], command: string, conf: unknown): Promise<{ status: number; out: string[]; ctx?: Context<C> }> {
  const { plugin, seen } = recorder<C>(validate);
  const i = io({ ...ENV, CNI_COMMAND: command }, JSON.stringify(conf));
  const status = await runPlugin(plugin, i);
  return { status, out: i.out, ctx: seen[0] };
}

const base = { cniVersion: '1.0.0', name: 'k8s-pod-network' };

describe('keys as Go decodes them', () => {
  for (const spelling of ['HostPort', 'hostport', 'HOSTPORT', 'hostPort']) {
    it(`portMappings: ${spelling} is hostPort`, async () => {
      const conf = {
        ...base,
        type: 'portmap',
        runtimeConfig: { portMappings: [{ [spelling]: 8080, ContainerPort: 80, Protocol: 'tcp', HostIP: '' }] },
      };
      const r = await run<PortmapConf>(validatePortmapConf, 'ADD', conf);
      expect(r.status, r.out.join('')).toBe(0);
      expect(r.ctx?.conf.runtimeConfig?.portMappings).toEqual([{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' }]);
    });
  }

  it('containerd (go-cni) capability keys: PortMappings, Bandwidth, IPRanges, DNS', async () => {
    const conf = {
      ...base,
      type: 'portmap',
      RuntimeConfig: {
        PortMappings: [{ HostPort: 8080, ContainerPort: 80, Protocol: 'tcp', HostIP: '' }],
        Bandwidth: { IngressRate: 1000, IngressBurst: 2000, EgressRate: 3000, EgressBurst: 4000 },
        IPRanges: [[{ Subnet: '10.244.1.0/24', RangeStart: '10.244.1.10', RangeEnd: '10.244.1.20', Gateway: '10.244.1.1' }]],
        DNS: { Servers: ['10.96.0.10'], Searches: ['svc.cluster.local'], Options: ['ndots:5'] },
        IPs: ['10.244.1.15'],
        MAC: 'aa:bb:cc:dd:ee:01',
        Aliases: { net: ['web'] },
      },
    };
    const r = await run<PortmapConf>(validatePortmapConf, 'ADD', conf);
    expect(r.status, r.out.join('')).toBe(0);
    expect(r.ctx?.conf.runtimeConfig).toEqual({
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' }],
      bandwidth: { ingressRate: 1000, ingressBurst: 2000, egressRate: 3000, egressBurst: 4000 },
      ipRanges: [[{ subnet: '10.244.1.0/24', rangeStart: '10.244.1.10', rangeEnd: '10.244.1.20', gateway: '10.244.1.1' }]],
      dns: { servers: ['10.96.0.10'], searches: ['svc.cluster.local'], options: ['ndots:5'] },
      ips: ['10.244.1.15'],
      mac: 'aa:bb:cc:dd:ee:01',
      aliases: { net: ['web'] },
    });
  });

  it('the exact-case key wins over the others, whatever their order', () => {
    const before = { runtimeConfig: { portMappings: [{ HostPort: 1, hostPort: 2, HOSTPORT: 3, containerPort: 80 }] } };
    normalizeKeys(before, keysPortmapConf);
    expect(before.runtimeConfig.portMappings[0]).toEqual({ hostPort: 2, containerPort: 80 });
    const after = { runtimeConfig: { portMappings: [{ hostPort: 2, HostPort: 1, containerPort: 80 }] } };
    normalizeKeys(after, keysPortmapConf);
    expect(after.runtimeConfig.portMappings[0]).toEqual({ hostPort: 2, containerPort: 80 });
  });

  it('of several keys that match but for case, the last one wins (as Go)', () => {
    const o = { bandwidth: { IngressRate: 1, INGRESSRATE: 2 } };
    normalizeKeys(o, keysBridgeConf.c?.runtimeConfig);
    expect(o.bandwidth).toEqual({ ingressRate: 2 });
  });

  it('top-level fields: IsGateway, IPMasq, Bridge, IPAM.Type (bridge)', async () => {
    const conf = { CNIVersion: '1.0.0', Name: 'n', Type: 'bridge', Bridge: 'cni0', IsGateway: true, IPMasq: true, HairpinMode: false, IPAM: { Type: 'host-local' } };
    const r = await run<BridgeConf>(validateBridgeConf, 'ADD', conf);
    expect(r.status, r.out.join('')).toBe(0);
    expect(r.ctx?.conf).toMatchObject({ cniVersion: '1.0.0', name: 'n', type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: true, hairpinMode: false, ipam: { type: 'host-local' } });
    expect(r.ctx?.conf).not.toHaveProperty('IsGateway');
  });

  it('a Go-style key of the wrong type is refused under its schema name', async () => {
    const r = await run<BridgeConf>(validateBridgeConf, 'ADD', { ...base, type: 'bridge', IsGateway: 'yes', ipam: { type: 'host-local' } });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.out[0]!)).toMatchObject({ code: 7, msg: expect.stringContaining('"isGateway"') });
  });

  it('host-local ranges, routes and args.cni.ips', () => {
    const o = {
      IPAM: { Type: 'host-local', Ranges: [[{ Subnet: '10.1.0.0/24', RangeStart: '10.1.0.5' }]], Routes: [{ Dst: '0.0.0.0/0', GW: '10.1.0.1' }], DataDir: '/d' },
      Args: { CNI: { IPs: ['10.1.0.9'] } },
    };
    normalizeKeys(o, keysHostLocalConf);
    expect(o).toEqual({
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.5' }]], routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }], dataDir: '/d' },
      args: { cni: { ips: ['10.1.0.9'] } },
    });
  });

  it('prevResult keys (Go result struct names) are read too', async () => {
    const conf = {
      ...base,
      type: 'portmap',
      prevResult: { CNIVersion: '1.0.0', Interfaces: [{ Name: 'eth0', Sandbox: '/run/netns/x' }], IPs: [{ Address: '10.1.0.2/24', Interface: 0 }] },
    };
    const r = await run<PortmapConf>(validatePortmapConf, 'ADD', conf);
    expect(r.status, r.out.join('')).toBe(0);
    expect(r.ctx?.prevResult).toMatchObject({ interfaces: [{ name: 'eth0', sandbox: '/run/netns/x' }], ips: [{ address: '10.1.0.2/24', interface: 0 }] });
  });

  it('unknown keys stay as they are, and a key of an unknown object is not touched', () => {
    const o = { Foo: 1, runtimeConfig: { Custom: { HostPort: 1 } }, prevResult: { IPs: [] } };
    normalizeKeys(o, keysPortmapConf);
    expect(o).toEqual({ Foo: 1, runtimeConfig: { Custom: { HostPort: 1 } }, prevResult: { IPs: [] } });
    const r = { IPs: [{ Address: '10.0.0.2/24' }], Routes: [{ Dst: '0.0.0.0/0' }], DNS: { Nameservers: ['1.1.1.1'] } };
    normalizeKeys(r, keysResult);
    expect(r).toEqual({ ips: [{ address: '10.0.0.2/24' }], routes: [{ dst: '0.0.0.0/0' }], dns: { nameservers: ['1.1.1.1'] } });
  });

  it('a key named like an Object.prototype member is just an unknown key', () => {
    const o = JSON.parse('{"constructor": 1, "__proto__": {"x": 1}, "toString": 2, "hasOwnProperty": 3}') as Record<string, unknown>;
    normalizeKeys(o, keysBridgeConf);
    expect(Object.keys(o).sort()).toEqual(['__proto__', 'constructor', 'hasOwnProperty', 'toString']);
  });
});

describe('input on DEL', () => {
  const bad = { portMappings: [{ HostPort: 'garbage' }, 7] };

  it('DEL drops an invalid runtimeConfig and runs', async () => {
    const r = await run<PortmapConf>(validatePortmapConf, 'DEL', { ...base, type: 'portmap', runtimeConfig: bad });
    expect(r.status, r.out.join('')).toBe(0);
    expect(r.ctx?.conf.runtimeConfig).toBeUndefined();
  });

  it('ADD and CHECK refuse the same runtimeConfig with 7', async () => {
    for (const command of ['ADD', 'CHECK']) {
      const r = await run<PortmapConf>(validatePortmapConf, command, { ...base, type: 'portmap', runtimeConfig: bad });
      expect(r.status).toBe(1);
      expect(JSON.parse(r.out[0]!)).toMatchObject({ code: 7, msg: expect.stringContaining('runtimeConfig.portMappings') });
    }
  });

  it('DEL ignores an invalid prevResult, and invalid args, keeping the rest', async () => {
    const conf = { ...base, type: 'bridge', bridge: 'br9', ipam: { type: 'host-local' }, args: { cni: { mac: 5 } }, prevResult: { cniVersion: '1.0.0', ips: [{ address: 'not-an-ip' }] } };
    const r = await run<BridgeConf>(validateBridgeConf, 'DEL', conf);
    expect(r.status, r.out.join('')).toBe(0);
    expect(r.ctx?.prevResult).toBeUndefined();
    expect(r.ctx?.conf.args).toBeUndefined();
    expect(r.ctx?.conf.bridge).toBe('br9');
  });

  it('DEL still refuses a config it cannot find records with (no ipam type) with 7', async () => {
    const r = await run<BridgeConf>(validateBridgeConf, 'DEL', { ...base, type: 'bridge', ipam: {} });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.out[0]!)).toMatchObject({ code: 7, msg: expect.stringContaining('ipam.type') });
  });
});

describe('prevResult as a result of its declared version', () => {
  const none = (prevResult: unknown) => ({ ...base, type: 'loopback', prevResult });

  it('an unknown version is code 1', async () => {
    const r = await run<NetConf>(validateNoneConf, 'ADD', none({ cniVersion: '9.9.9', ips: [] }));
    expect(r.status).toBe(1);
    expect(JSON.parse(r.out[0]!)).toMatchObject({ code: 1, msg: expect.stringContaining('prevResult') });
  });

  for (const [what, prev, field] of [
    ['an address that is no IP', { cniVersion: '1.0.0', ips: [{ address: 'not-an-ip' }] }, 'prevResult.ips.0.address'],
    ['an address without prefix length', { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2' }] }, 'prevResult.ips.0.address'],
    ['a bad gateway', { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24', gateway: 'gw' }] }, 'prevResult.ips.0.gateway'],
    ['a route to no CIDR', { cniVersion: '1.0.0', routes: [{ dst: '10.0.0.0/33' }] }, 'prevResult.routes.0.dst'],
    ['a 0.4.0 ip without version', { cniVersion: '0.4.0', ips: [{ address: '10.0.0.2/24' }] }, 'prevResult.ips.0'],
  ] as const) {
    it(`${what} is code 7 naming ${field}`, async () => {
      for (const command of ['ADD', 'CHECK']) {
        const r = await run<NetConf>(validateNoneConf, command, none(prev));
        expect(r.status).toBe(1);
        expect(JSON.parse(r.out[0]!)).toMatchObject({ code: 7, msg: expect.stringContaining(field) });
      }
    });
  }

  it('a 0.4.0 prevResult under a 1.0.0 config is read as 0.4.0', async () => {
    const r = await run<NetConf>(validateNoneConf, 'ADD', none({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.0.0.2/24' }] }));
    expect(r.status, r.out.join('')).toBe(0);
    expect(r.ctx?.prevResult?.ips).toEqual([{ address: '10.0.0.2/24' }]);
  });
});
