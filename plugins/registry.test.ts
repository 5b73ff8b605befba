import { describe, it, expect } from 'vitest';
import { PLUGINS, PLUGIN_NAMES } from './registry.ts';
import { keyTreeOfValidator } from '../lib/spec/keys.gen.js';

// Each plugin declares its key tree (lib/skel Plugin.keys) instead of the
// skel looking it up by validator: a plugin that declared none, or another
// configuration's, would take Go-style keys (HostPort, IsGateway) as unknown.
describe('plugin key trees', () => {
  it.each(PLUGIN_NAMES)('%s declares the key tree of the configuration it validates', async (name) => {
    const plugin = await PLUGINS[name]();
    expect(plugin.keys).toBeDefined();
    expect(plugin.keys).toBe(keyTreeOfValidator.get(plugin.validate));
  });
});
