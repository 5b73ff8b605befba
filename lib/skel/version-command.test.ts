// VERSION as main.ts answers it (runVersion, without the plugin) and as the
// skel answers it (runPlugin): the same bytes for the same input, errors too.
import { describe, it, expect } from 'vitest';
import { runVersion } from './version-command.ts';
import { runPlugin, type Plugin } from './index.ts';
import type { NetConf } from '../spec/index.ts';
import { validateNetConf } from '../spec/validators.gen.js';

const never = () => {
  throw new Error('a plugin command ran for VERSION');
};
const plugin: Plugin<NetConf> = { name: 'x', validate: validateNetConf, add: never, check: never, del: never, gc: never, status: never };

function io(stdin: string, env: NodeJS.ProcessEnv) {
  const out: string[] = [];
  return { out, io: { env: { CNI_COMMAND: 'VERSION', ...env }, readStdin: () => stdin, writeStdout: (t: string) => void out.push(t) } };
}

const inputs: [string, string, NodeJS.ProcessEnv, number][] = [
  ['the asked version', '{"cniVersion":"0.4.0"}', {}, 0],
  ['an unknown version, echoed', '{"cniVersion":"9.9.9"}', {}, 0],
  ['empty stdin', '', {}, 0],
  ['malformed JSON', '{"cniVersion":', {}, 1],
  ['a JSON array', '[1]', {}, 1],
  ['a malformed CNI_ARGS', '{"cniVersion":"0.3.1"}', { CNI_ARGS: 'IP' }, 1],
];

describe('VERSION without the plugin', () => {
  it.each(inputs)('%s: same answer and status as the skel', async (_what, stdin, env, status) => {
    const fast = io(stdin, env);
    const skel = io(stdin, env);
    expect(runVersion(fast.io)).toBe(status);
    expect(await runPlugin(plugin, skel.io)).toBe(status);
    expect(fast.out).toEqual(skel.out);
  });

  it('answers in the asked version, or reports the error in it', () => {
    const ok = io('{"cniVersion":"0.4.0"}', {});
    runVersion(ok.io);
    expect(JSON.parse(ok.out.join(''))).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    const bad = io('{"cniVersion":"0.3.1"}', { CNI_ARGS: 'IP' });
    runVersion(bad.io);
    expect(JSON.parse(bad.out.join(''))).toMatchObject({ cniVersion: '0.3.1', code: 4 });
    const garbled = io('{"cniVersion":', {});
    runVersion(garbled.io);
    expect(JSON.parse(garbled.out.join(''))).toMatchObject({ code: 6 });
  });
});
