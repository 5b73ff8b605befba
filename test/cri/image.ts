// A tiny container image made here, with no registry: one layer holding
// Debian's static busybox, written as an OCI image layout tar (layer,
// config, manifest, index) that `ctr images import` takes. The same image
// is the pod's pause container (its default command sleeps) and the app
// (busybox httpd with a CGI that answers the client's address).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const IMAGE = 'cnikit.test/busybox:1';

/** Where the app serves: GET /cgi-bin/ip answers the peer's address (REMOTE_ADDR), GET / a fixed page. */
export const PAGE = 'hello from a pod\n';

function tar(args: string[]): void {
  const r = spawnSync('tar', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar ${args.join(' ')}: ${r.stderr}`);
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes the image as an OCI layout tar under dir and returns its path. */
export function buildImage(dir: string, busybox = '/bin/busybox'): string {
  const rootfs = join(dir, 'rootfs');
  for (const d of ['bin', 'www/cgi-bin', 'proc', 'sys', 'dev', 'etc', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(busybox, join(rootfs, 'bin/busybox'));
  chmodSync(join(rootfs, 'bin/busybox'), 0o755);
  symlinkSync('busybox', join(rootfs, 'bin/sh'));
  writeFileSync(join(rootfs, 'www/index.html'), PAGE);
  writeFileSync(join(rootfs, 'www/cgi-bin/ip'), '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "$REMOTE_ADDR"\n', { mode: 0o755 });
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\n');

  const layout = join(dir, 'layout');
  const blobs = join(layout, 'blobs/sha256');
  mkdirSync(blobs, { recursive: true });
  const layerTar = join(dir, 'layer.tar');
  tar(['--create', '--file', layerTar, '--directory', rootfs, '--owner=0', '--group=0', '--numeric-owner', '--sort=name', '--mtime=@0', '.']);
  const layer = readFileSync(layerTar);
  const layerDigest = sha256(layer);
  writeFileSync(join(blobs, layerDigest), layer);

  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/bin/busybox', 'sleep', '2147483647'], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
  });
  const configDigest = sha256(config);
  writeFileSync(join(blobs, configDigest), config);

  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configDigest}`, size: Buffer.byteLength(config) },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerDigest}`, size: layer.length }],
  });
  const manifestDigest = sha256(manifest);
  writeFileSync(join(blobs, manifestDigest), manifest);

  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${manifestDigest}`,
      size: Buffer.byteLength(manifest),
      // containerd names the imported image after this annotation.
      annotations: { 'io.containerd.image.name': IMAGE, 'org.opencontainers.image.ref.name': '1' },
      platform: { architecture: 'amd64', os: 'linux' },
    }],
  }));
  const out = join(dir, 'image.tar');
  tar(['--create', '--file', out, '--directory', layout, '--owner=0', '--group=0', '--numeric-owner', '.']);
  return out;
}
