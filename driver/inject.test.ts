import { describe, it, expect } from 'vitest';
import { pluginConfig, gcConfig, runtimeConfigFor } from './inject.ts';

describe('per-plugin configuration', () => {
  const prevResult = { cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24' }] };

  it('sets the list\'s name and version over the plugin\'s, and passes prevResult', () => {
    const conf = pluginConfig({ type: 'a', name: 'own', cniVersion: '0.3.1', foo: 1 }, { name: 'net', cniVersion: '1.1.0', prevResult });
    expect(conf).toEqual({ type: 'a', name: 'net', cniVersion: '1.1.0', foo: 1, prevResult });
  });

  it('gives a plugin only the capability arguments it declares true, and only those the runtime gave', () => {
    const capabilityArgs = { portMappings: [{ hostPort: 1, containerPort: 2, protocol: 'tcp' }], mac: 'aa:bb:cc:dd:ee:ff', ips: ['10.0.0.9'] };
    const conf = pluginConfig({ type: 'a', capabilities: { portMappings: true, mac: false, bandwidth: true } }, { name: 'net', cniVersion: '1.1.0', capabilityArgs });
    expect(conf.runtimeConfig).toEqual({ portMappings: capabilityArgs.portMappings });
    expect(conf.capabilities).toEqual({ portMappings: true, mac: false, bandwidth: true });
    expect(runtimeConfigFor(undefined, capabilityArgs)).toBeUndefined();
    expect(runtimeConfigFor({ ips: true }, { ips: null })).toBeUndefined();
  });

  it('keeps a runtimeConfig written in the file unless the runtime has arguments for the plugin', () => {
    const plugin = { type: 'a', capabilities: { mac: true }, runtimeConfig: { mac: 'from-file' } };
    expect(pluginConfig(plugin, { name: 'n', cniVersion: '1.0.0' }).runtimeConfig).toEqual({ mac: 'from-file' });
    expect(pluginConfig(plugin, { name: 'n', cniVersion: '1.0.0', capabilityArgs: { mac: 'rt' } }).runtimeConfig).toEqual({ mac: 'rt' });
  });

  it('does not change the plugin config it was given', () => {
    const plugin = { type: 'a', capabilities: { mac: true } };
    pluginConfig(plugin, { name: 'n', cniVersion: '1.0.0', capabilityArgs: { mac: 'x' }, prevResult });
    expect(plugin).toEqual({ type: 'a', capabilities: { mac: true } });
  });

  it('gives GC the valid attachments under both keys plugins read, without runtimeConfig', () => {
    const valid = [{ containerID: 'c1', ifname: 'eth0' }];
    expect(gcConfig({ type: 'a', capabilities: { mac: true } }, 'net', '1.1.0', valid)).toEqual({
      type: 'a', capabilities: { mac: true }, name: 'net', cniVersion: '1.1.0', 'cni.dev/valid-attachments': valid, 'cni.dev/attachments': valid,
    });
  });
});
