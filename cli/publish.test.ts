import { describe, it, expect } from 'vitest';
import { parsePublish, PublishError } from './publish.ts';

describe("Docker's -p syntax", () => {
  it.each([
    ['8080:80', { hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
    ['80', { hostPort: 0, containerPort: 80, protocol: 'tcp' }],
    ['0.0.0.0:5000:5000/udp', { hostPort: 5000, containerPort: 5000, protocol: 'udp', hostIP: '0.0.0.0' }],
    ['127.0.0.1:8053:53/udp', { hostPort: 8053, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' }],
    ['8000-8010:80-90', { hostPort: 8000, containerPort: 80, protocol: 'tcp', range: 11 }],
    ['[::1]:8080:80/SCTP', { hostPort: 8080, containerPort: 80, protocol: 'sctp', hostIP: '::1' }],
    ['127.0.0.1::80', { hostPort: 0, containerPort: 80, protocol: 'tcp', hostIP: '127.0.0.1' }],
  ])('%s', (spec, want) => {
    expect(parsePublish(spec)).toEqual(want);
  });

  it.each(['8080:80/icmp', '8000-8010:80-85', 'a:80', '80-90', '70000:80', '1:2:3:4', ''])('refuses %s', (spec) => {
    expect(() => parsePublish(spec)).toThrow(PublishError);
  });
});
