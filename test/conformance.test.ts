// The conformance suite judged first on plugins whose faults are known:
// cnikit's passes every case, the reference fails exactly its documented
// ones, and deliberately broken copies of a plugin are caught.
import { describe, it, expect, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, symlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { BIN, DIST, REFERENCE_BIN } from './dist.ts';
import { REFERENCE_EXPECTED_FAILURES } from '../conformance/expected.ts';
import { CASES } from '../conformance/index.ts';

const META = ['firewall', 'tuning', 'bandwidth'] as const;
/** The chained plugins cnikit has built so far; the cases of the others are skipped. */
const ownMeta = META.filter((p) => existsSync(join(BIN, p)));
const metaArgs = (plugins: readonly string[]) => plugins.flatMap((p) => [`--${p}`, p]);

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function conformance(args: string[]) {
  return spawnSync(join(DIST, 'cnikit'), ['conformance', ...args], { encoding: 'utf8', timeout: 900_000 });
}

function failed(stdout: string): string[] {
  return stdout.split('\n').filter((l) => /^\| \S+ \| .* \| fail/.test(l)).map((l) => l.split('|')[1]!.trim());
}

/** A plugin dir of cnikit's links, with one plugin replaced by a wrapper script. */
function brokenDir(plugin: string, script: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-broken-'));
  dirs.push(dir);
  for (const p of ['loopback', 'bridge', 'host-local', 'portmap']) {
    if (p === plugin) writeFileSync(join(dir, p), `#!/bin/bash\n${script}\n`, { mode: 0o755 });
    else symlinkSync(join(BIN, p), join(dir, p));
  }
  return dir;
}

/** A plugin dir holding one reference chained plugin behind a wrapper script. */
function brokenMeta(plugin: string, script: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-broken-'));
  dirs.push(dir);
  writeFileSync(join(dir, plugin), `#!/bin/bash\n${script}\n`, { mode: 0o755 });
  return dir;
}

describe('the conformance suite', () => {
  it("passes every case on cnikit's plugins", () => {
    const r = conformance(['--plugins', BIN, '--bridge', 'bridge', '--portmap', 'portmap', ...metaArgs(ownMeta)]);
    expect(failed(r.stdout)).toEqual([]);
    const unbuilt = CASES.filter((c) => META.some((p) => !ownMeta.includes(p) && c.id.startsWith(`${p}-`))).length;
    expect(r.stdout).toMatch(new RegExp(`^\\d+ passed, 0 failed, ${unbuilt} skipped$`, 'm'));
    expect(r.status).toBe(0);
    // The whole suite, 49 cases of real execs: minutes on a loaded 2-core machine.
  }, 900_000);

  it('fails the reference plugins exactly where their faults are documented', () => {
    const r = conformance(['--plugins', REFERENCE_BIN, '--bridge', 'bridge', '--portmap', 'portmap', ...metaArgs(META), '--reference']);
    expect(failed(r.stdout).sort()).toEqual(Object.keys(REFERENCE_EXPECTED_FAILURES).sort());
    expect(r.stdout).toContain('(expected: the reference skel prints its usage text');
    expect(r.status).toBe(0);
    // Without --reference those failures count.
    expect(conformance(['--plugins', REFERENCE_BIN, '--case', 'env-no-command']).status).toBe(1);
  }, 900_000);

  it('catches a loopback that answers malformed JSON with code 999', () => {
    const dir = brokenDir('loopback', `input=$(cat)\nif [[ "$input" != *'}'* ]]; then echo '{"cniVersion":"1.0.0","code":999,"msg":"broken"}'; exit 1; fi\nexec ${join(BIN, 'loopback')} <<<"$input"`);
    const r = conformance(['--plugins', dir]);
    expect(failed(r.stdout)).toEqual(['decode-error']);
    expect(r.stdout).toMatch(/decode-error .*code 999, expected 6/);
    expect(r.status).toBe(1);
  });

  it('catches a bridge that leaves its veth behind on DEL', () => {
    const dir = brokenDir('bridge', `if [ "$CNI_COMMAND" = DEL ]; then cat >/dev/null; exit 0; fi\nexec ${join(BIN, 'bridge')}`);
    const r = conformance(['--plugins', dir, '--bridge', 'bridge', '--case', 'bridge-del-clean']);
    expect(failed(r.stdout)).toEqual(['bridge-del-clean']);
    expect(r.stdout).toMatch(/a host veth is left/);
  });

  it('catches a loopback that picks the highest of cniVersions instead of answering in cniVersion', () => {
    // Rewrites cniVersion to the highest version of cniVersions that cnikit
    // speaks, then hands the config to the real loopback; other input is passed on as it is.
    const js = 'let c; try { c = JSON.parse(process.argv[1]); } catch { c = undefined; }'
      + ' if (c && Array.isArray(c.cniVersions)) { const vs = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].filter((v) => c.cniVersions.includes(v)); if (vs.length > 0) c.cniVersion = vs[vs.length - 1]; }'
      + ' process.stdout.write(c === undefined ? process.argv[1] : JSON.stringify(c));';
    const dir = brokenDir('loopback', `input=$(cat)\ninput=$(${process.execPath} -e '${js}' "$input")\nexec ${join(BIN, 'loopback')} <<<"$input"`);
    const r = conformance(['--plugins', dir, '--case', 'version-not-from-cniversions', '--case', 'loopback-add', '--case', 'loopback-result-040']);
    expect(failed(r.stdout)).toEqual(['version-not-from-cniversions']);
    expect(r.stdout).toMatch(/version-not-from-cniversions .*ADD with cniVersion 1\.0\.0 and cniVersions 1\.0\.0, 1\.1\.0, 9\.9\.9: answered in "1\.1\.0"/);
    expect(r.stdout).toMatch(/^2 passed, 1 failed, 0 skipped$/m);
    expect(r.status).toBe(1);
  });

  it('catches a chained plugin that answers in its own version instead of the input\'s', () => {
    const js = 'const r = JSON.parse(process.argv[1]); r.cniVersion = "1.0.0"; for (const i of r.ips ?? []) delete i.version; process.stdout.write(JSON.stringify(r));';
    const dir = brokenMeta('tuning', `out=$(${REFERENCE_BIN}/tuning); rc=$?\nif [ "$CNI_COMMAND" = ADD ] && [ $rc = 0 ]; then out=$(${process.execPath} -e '${js}' "$out"); fi\necho "$out"; exit $rc`);
    const r = conformance(['--plugins', dir, '--tuning', 'tuning', '--case', 'tuning-passthrough', '--case', 'tuning-del-twice']);
    expect(failed(r.stdout)).toEqual(['tuning-passthrough']);
    expect(r.stdout).toMatch(/tuning-passthrough .*tuning ADD in 0\.3\.1: the result is not the prevResult/);
    expect(r.status).toBe(1);
  });

  it('catches a chained plugin whose DEL leaves its firewall rules', () => {
    const dir = brokenMeta('firewall', `if [ "$CNI_COMMAND" = DEL ]; then cat >/dev/null; exit 0; fi\nexec ${REFERENCE_BIN}/firewall`);
    const r = conformance(['--plugins', dir, '--firewall', 'firewall', '--case', 'firewall-del-twice', '--case', 'firewall-passthrough']);
    expect(failed(r.stdout)).toEqual(['firewall-del-twice']);
    expect(r.stdout).toMatch(/firewall-del-twice .*after DEL: rules naming 10\.249\.\d+\.2 are left/);
  });

  it('catches a chained plugin whose DEL fails once the netns is gone', () => {
    const dir = brokenMeta('bandwidth', `if [ "$CNI_COMMAND" = DEL ] && [ ! -e "$CNI_NETNS" ]; then cat >/dev/null; echo '{"code":3,"msg":"no such netns"}'; exit 1; fi\nexec ${REFERENCE_BIN}/bandwidth`);
    const r = conformance(['--plugins', dir, '--bandwidth', 'bandwidth', '--case', 'bandwidth-del-no-netns', '--case', 'bandwidth-version']);
    expect(failed(r.stdout)).toEqual(['bandwidth-del-no-netns']);
    expect(r.stdout).toMatch(/bandwidth-del-no-netns .*bandwidth DEL with the netns gone: exit 1/);
  });

  it('catches a chained plugin that makes nothing (the cases check ADD did its work)', () => {
    const dir = brokenMeta('bandwidth', `if [ "$CNI_COMMAND" = ADD ]; then node_in=$(cat); echo "$node_in" | ${process.execPath} -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => process.stdout.write(JSON.stringify({ ...JSON.parse(s).prevResult, cniVersion: JSON.parse(s).cniVersion })))'; exit 0; fi\nexec ${REFERENCE_BIN}/bandwidth`);
    const r = conformance(['--plugins', dir, '--bandwidth', 'bandwidth', '--case', 'bandwidth-del-no-netns']);
    expect(failed(r.stdout)).toEqual(['bandwidth-del-no-netns']);
    expect(r.stdout).toMatch(/bandwidth ADD with an egress rate made 0 ifb devices, expected 1/);
  });

  it('skips the cases of a plugin role that is not given', () => {
    const r = conformance(['--plugins', BIN]);
    expect(r.stdout).toMatch(/bridge-result \| .* \| skip \(no bridge plugin given\)/);
    for (const p of META) expect(r.stdout).toMatch(new RegExp(`${p}-del-no-netns \\| .* \\| skip \\(no ${p} plugin given\\)`));
    expect(r.status).toBe(0);
  });
});
