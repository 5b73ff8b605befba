import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, symlinkSync, chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { Plugin } from '../skel/index.ts';
import type { NetConf } from '../spec/index.ts';
import { ownPluginsUnlessShadowed, isCnikitExecutable } from './resolve.ts';

describe('which plugins run in-process', () => {
  let dir: string;
  const fake = { name: 'fake' } as unknown as Plugin<NetConf>;
  const own = async (type: string) => (['bridge', 'loopback', 'portmap'].includes(type) ? fake : undefined);
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cnikit-resolve-'));
    mkdirSync(join(dir, 'dist'));
    mkdirSync(join(dir, 'ref'));
    writeFileSync(join(dir, 'dist', 'cnikit'), '#!/bin/sh\n');
    chmodSync(join(dir, 'dist', 'cnikit'), 0o755);
    symlinkSync('cnikit', join(dir, 'dist', 'loopback'));
    for (const name of ['bridge', 'loopback']) {
      writeFileSync(join(dir, 'ref', name), '#!/bin/sh\n');
      chmodSync(join(dir, 'ref', name), 0o755);
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('recognises cnikit\'s executable through its links', () => {
    expect(isCnikitExecutable(join(dir, 'dist', 'loopback'))).toBe(true);
    expect(isCnikitExecutable(join(dir, 'ref', 'loopback'))).toBe(false);
    expect(isCnikitExecutable(join(dir, 'missing'))).toBe(false);
  });

  it('runs cnikit\'s own in-process unless CNI_PATH finds another binary of that name first', async () => {
    const r = ownPluginsUnlessShadowed([join(dir, 'dist'), join(dir, 'ref')], own);
    expect(await r('loopback')).toBe(fake); // CNI_PATH finds cnikit's link first
    expect(await r('bridge')).toBeUndefined(); // the reference bridge: exec it
    expect(await r('portmap')).toBe(fake); // nowhere in CNI_PATH: cnikit's own
    expect(await r('sleeper')).toBeUndefined(); // not cnikit's: exec (and fail to find)
    expect(await ownPluginsUnlessShadowed([join(dir, 'ref')], own)('loopback')).toBeUndefined();
  });
});
