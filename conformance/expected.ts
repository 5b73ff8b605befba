// Where the reference plugins (Debian containernetworking-plugins) fail a
// case, and why that is their fault and not the suite's. `--reference`
// reports these as expected and fails only on others.
export const REFERENCE_EXPECTED_FAILURES: Record<string, string> = {
  'version-echo': 'SPEC "VERSION Success": cniVersion must be the value given on input; the reference answers with its own (1.0.0)',
  'env-no-command': 'the reference skel prints its usage text and exits 0 when CNI_COMMAND is missing, instead of an error object',
  'ipam-exhausted': 'SPEC §4 (delegation): "if, on ADD, a delegated plugin fails, the upper plugin should execute again with DEL before returning failure"; the reference bridge returns the IPAM error with its veth pair still in place',
  'loopback-result-040': 'SPEC 0.4.0 "Result": ips[].version ("4" or "6") is required in a 0.4.0 result (fields are required unless marked optional); the reference loopback labels its 1.0.0 result with the input\'s version before PrintResult, so no conversion happens and a 0.4.0 answer has no ips[].version',
  'bridge-del-no-netns': 'the reference bridge finds its masquerade rules through the container address it reads in the netns; with the netns gone it cannot, and the rules leak',
  'firewall-del-no-prevresult': 'the reference firewall finds its CNI-FORWARD rules only through the addresses in prevResult and keeps no record: a DEL without one (containerd after a failed ADD, RemovePodSandbox\'s second round, a lost result cache) succeeds and leaks the rules accepting the container\'s address',
  'tuning-del-no-netns': 'the reference tuning removes its backup file (<dataDir>/<containerID>_<ifname>.json) only inside the container netns; with the netns gone its DEL succeeds and the file is left for good',
  'bandwidth-del-twice': 'the reference bandwidth DEL deletes its ifb but leaves the tbf qdisc and the ingress qdisc (with its mirred filter) it put on the host veth; they go only when something else deletes the veth, and an ADD on the same veth meanwhile fails with "create qdisc: file exists"',
  'bandwidth-del-no-prevresult': 'as bandwidth-del-twice: the tbf and ingress qdiscs stay on the host veth after DEL (without prevResult too)',
};
