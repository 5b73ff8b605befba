// `cnikit install` as an operator runs it: into an empty CNI bin dir, and
// next to plugins that are not ours.
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync, readlinkSync, writeFileSync, readFileSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { DIST } from './dist.ts';
import { PLUGIN_NAMES } from '../plugins/names.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'cnikit-install-'));
  dirs.push(d);
  return d;
}

const cnikit = (args: string[]) => spawnSync(join(DIST, 'cnikit'), args, { encoding: 'utf8' });

describe('cnikit install', () => {
  it('puts the executable and a link per plugin into the dir, and the links answer VERSION', () => {
    const dir = join(tmp(), 'opt/cni/bin');
    const r = cnikit(['install', '--dir', dir]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(statSync(join(dir, 'cnikit')).mode & 0o777).toBe(0o755);
    for (const name of PLUGIN_NAMES) {
      expect(readlinkSync(join(dir, name))).toBe('cnikit');
      const v = spawnSync(join(dir, name), [], { env: { CNI_COMMAND: 'VERSION' }, input: '', encoding: 'utf8' });
      expect(JSON.parse(v.stdout).supportedVersions).toContain('1.1.0');
    }
    // Installing again over our own install is fine.
    expect(cnikit(['install', '--dir', dir]).status).toBe(0);
  });

  it('refuses to replace a plugin that is not its own unless forced', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'loopback'), '#!/bin/sh\necho reference\n', { mode: 0o755 });
    const r = cnikit(['install', '--dir', dir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/already has other plugins named loopback; use --force/);
    expect(readFileSync(join(dir, 'loopback'), 'utf8')).toContain('reference');
    expect(cnikit(['install', '--dir', dir, '--force']).status).toBe(0);
    expect(readlinkSync(join(dir, 'loopback'))).toBe('cnikit');
  });
});
