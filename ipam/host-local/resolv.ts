// DNS settings for the result from a resolv.conf-format file (ipam.resolvConf).
import { readFile } from '../../lib/fs/index.ts';
import type { DNS } from '../../lib/spec/index.ts';
import { CniError, ErrorCode } from '../../lib/skel/index.ts';

export function parseResolvConf(text: string): DNS {
  const dns: DNS = {};
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...values] = line.split(/\s+/);
    if (!key || values.length === 0) continue;
    if (key === 'nameserver') (dns.nameservers ??= []).push(values[0]!);
    else if (key === 'domain') dns.domain = values[0]!;
    else if (key === 'search') dns.search = values;
    else if (key === 'options') (dns.options ??= []).push(...values);
  }
  return dns;
}

export function readResolvConf(path: string): DNS {
  try {
    return parseResolvConf(readFile(path));
  } catch (e) {
    throw new CniError(ErrorCode.InvalidConfig, `cannot read ipam.resolvConf ${path}: ${(e as Error).message}`);
  }
}
