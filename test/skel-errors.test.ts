// Every error of the protocol layer, exec'd as a runtime would, checking the
// code, the message and that nothing in the container namespace changed.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, type PluginCall } from './lab.ts';
import { bin, BIN } from './dist.ts';

let lab: Lab;
let netns: string;
const conf = { cniVersion: '1.1.0', name: 'net1', type: 'none' };

function loUp(): boolean {
  const links = JSON.parse(lab.ip(['-j', 'link', 'show', 'lo'], netns)) as { flags: string[] }[];
  return links[0]!.flags.includes('UP');
}

function call(over: Partial<PluginCall> = {}): { code: number; msg: string; details?: string; status: number | null; cniVersion: string } {
  const r = lab.plugin(bin('none'), {
    command: 'ADD',
    containerId: 'c1',
    netns,
    ifname: 'eth0',
    path: BIN,
    config: conf,
    ...over,
  });
  const out = JSON.parse(r.stdout) as { code: number; msg: string; details?: string; cniVersion: string };
  return { ...out, status: r.status };
}

beforeAll(() => {
  lab = Lab.create();
  netns = lab.container();
});
afterAll(() => lab.destroy());

describe('protocol errors leave the container untouched', () => {
  const cases: [string, Partial<PluginCall>, number, RegExp][] = [
    ['missing CNI_COMMAND', { command: undefined }, 4, /CNI_COMMAND/],
    ['unknown CNI_COMMAND', { command: 'ATTACH' }, 4, /unknown CNI_COMMAND "ATTACH"/],
    ['missing CNI_CONTAINERID', { containerId: undefined }, 4, /CNI_CONTAINERID/],
    ['missing CNI_NETNS on ADD', { netns: undefined }, 4, /CNI_NETNS/],
    ['missing CNI_IFNAME', { ifname: undefined }, 4, /CNI_IFNAME/],
    ['missing CNI_PATH', { path: undefined }, 4, /CNI_PATH/],
    ['container ID with a slash', { containerId: '../etc' }, 4, /invalid CNI_CONTAINERID/],
    ['interface name too long', { ifname: 'a-very-long-ifname' }, 4, /invalid CNI_IFNAME/],
    ['malformed CNI_ARGS', { args: 'IP' }, 4, /CNI_ARGS/],
    ['malformed JSON', { config: '{"cniVersion": "1.1.0",' }, 6, /decoding/],
    ['JSON that is not an object', { config: '[1,2]' }, 6, /not a JSON object/],
    ['unsupported version', { config: { ...conf, cniVersion: '9.9.9' } }, 1, /9\.9\.9/],
    ['no cniVersion', { config: { name: 'net1', type: 'none' } }, 1, /no cniVersion/],
    ['network name with a slash', { config: { ...conf, name: '../x' } }, 7, /"name".*"\.\.\/x"/],
    ['missing type', { config: { cniVersion: '1.1.0', name: 'n' } }, 7, /"type" is required/],
    ['prevResult of the wrong shape', { config: { ...conf, prevResult: { ips: 'x' } } }, 7, /prevResult\.ips/],
    ['CHECK on a 0.3.1 config', { command: 'CHECK', config: { ...conf, cniVersion: '0.3.1' } }, 1, /does not allow CHECK/],
    ['GC on a 1.0.0 config', { command: 'GC', config: { ...conf, cniVersion: '1.0.0' } }, 1, /does not allow GC/],
    ['STATUS on a 0.4.0 config', { command: 'STATUS', config: { ...conf, cniVersion: '0.4.0' } }, 1, /does not allow STATUS/],
  ];
  it.each(cases)('%s', (_name, over, code, msg) => {
    const r = call(over);
    expect(r.status).not.toBe(0);
    expect(r.code).toBe(code);
    expect(r.msg).toMatch(msg);
    expect(loUp()).toBe(false);
  });

  it('unsupported version lists the supported ones in details', () => {
    const r = call({ config: { ...conf, cniVersion: '0.2.0' } });
    expect(r.details).toContain('0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0');
  });

  it('the error carries the configuration version', () => {
    const r = call({ config: { ...conf, cniVersion: '0.4.0', name: '' } });
    expect(r.code).toBe(7);
    expect(r.cniVersion).toBe('0.4.0');
  });

  it('a netns path that does not exist is named, code 3', () => {
    const r = call({ netns: '/run/netns/does-not-exist-xyz' });
    expect(r.code).toBe(3);
    expect(r.msg).toContain('/run/netns/does-not-exist-xyz');
    expect(loUp()).toBe(false);
  });

  it('a netns path that is not a network namespace is named, code 4', () => {
    const file = join(lab.dir, 'not-a-netns');
    writeFileSync(file, '');
    const r = call({ netns: file });
    expect(r.code).toBe(4);
    expect(r.msg).toContain(`${file} is not a network namespace`);
  });

  it("the plugin's own namespace is refused as a container's", () => {
    const r = call({ netns: lab.hostPath });
    expect(r.code).toBe(4);
    expect(r.msg).toMatch(/plugin's own network namespace/);
    const hostLo = JSON.parse(lab.ip(['-j', 'link', 'show', 'lo'])) as { flags: string[] }[];
    expect(hostLo[0]!.flags).toContain('UP'); // untouched (the lab set it up)
  });
});

describe('VERSION', () => {
  it('lists 0.3.0 to 1.1.0 and echoes the asked version', () => {
    const r = lab.plugin(bin('none'), { command: 'VERSION', config: { cniVersion: '0.4.0' } });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });
  it('answers with empty stdin and no other variables', () => {
    const r = lab.plugin(bin('loopback'), { command: 'VERSION' });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).cniVersion).toBe('1.1.0');
  });
});
