// Test-only tus 1.0 server: @tus/server + @tus/file-store on loopback, for tests/support/tus_servers.py.
// Its upload-finished hook hashes what the store holds and answers with RFC 9530 Repr-Digest, which is
// also kept beside the upload and added to HEAD responses of finished uploads. It must never listen
// on anything but loopback. Usage: node server.js --port N --dir DIR [--host 127.0.0.1]
// [--keep-digests K --drop-digests N]: after the first K finished uploads, the next N lose their
// digest for good (as a server whose hook never ran and that cannot compute it later): neither
// the finishing PATCH nor a HEAD of them answers a Repr-Digest.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const host = arg('host', '127.0.0.1');
if (!['127.0.0.1', '::1', 'localhost'].includes(host)) {
  console.error(`refusing to listen on ${host}: loopback only`);
  process.exit(2);
}
const port = Number(arg('port', '0'));
const dir = path.resolve(arg('dir', './uploads'));
const expiryMs = Number(arg('expiry-ms', '0'));
await fs.mkdir(dir, { recursive: true });
const keepDigests = Number(arg('keep-digests', '0'));
const dropDigests = Number(arg('drop-digests', '0'));
let finished = 0;
const dropped = new Set(); // upload ids whose digest is lost

// RFC 9530 Repr-Digest of what the store holds: sha-256 and sha-512, in one read.
async function reprDigest(file) {
  const sha256 = createHash('sha256');
  const sha512 = createHash('sha512');
  for await (const piece of createReadStream(file)) {
    sha256.update(piece);
    sha512.update(piece);
  }
  return `sha-256=:${sha256.digest('base64')}:, sha-512=:${sha512.digest('base64')}:`;
}

const digestPath = (id) => path.join(dir, `${id}.repr-digest`);

// The digest for a HEAD: the one kept, or, when every byte is stored but its digest was never
// kept (the server stopped between storing the last PATCH and its upload-finished hook), computed
// now from what the store holds, as the hook would have. @tus/file-store keeps the upload's
// declared length in `<id>.json` ("size") and its bytes in `<id>`. null: not finished.
async function digestForHead(id) {
  try {
    return (await fs.readFile(digestPath(id), 'utf8')).trim();
  } catch {
    // not kept: finished without its hook, or not finished
  }
  const info = JSON.parse(await fs.readFile(path.join(dir, `${id}.json`), 'utf8'));
  const { size } = await fs.stat(path.join(dir, id));
  if (typeof info.size !== 'number' || size !== info.size) return null;
  const value = await reprDigest(path.join(dir, id));
  await fs.writeFile(digestPath(id), value);
  return value;
}

const tus = new Server({
  path: '/files',
  datastore: new FileStore({ directory: dir, ...(expiryMs > 0 ? { expirationPeriodInMilliseconds: expiryMs } : {}) }),
  exposedHeaders: ['Repr-Digest'],
  // Behind the TLS-terminating test proxy: upload URLs must say https (X-Forwarded-Proto).
  respectForwardedHeaders: true,
  // Upload finished: hash what was stored (not what was received) and say so (RFC 9530 section 3).
  async onUploadFinish(_req, upload) {
    finished += 1;
    if (finished > keepDigests && dropped.size < dropDigests) {
      dropped.add(upload.id);
      return {};
    }
    const value = await reprDigest(path.join(dir, upload.id));
    await fs.writeFile(digestPath(upload.id), value);
    return { headers: { 'Repr-Digest': value } };
  },
});

const server = http.createServer(async (req, res) => {
  if (req.method === 'HEAD') {
    const id = decodeURIComponent((req.url || '').split('?')[0].split('/').pop() || '');
    if (id && !id.includes('..') && !dropped.has(id)) {
      try {
        // Set before the tus handler writes its head: Node merges these into writeHead's headers.
        const value = await digestForHead(id);
        if (value) res.setHeader('Repr-Digest', value);
      } catch {
        // not ours (no such upload): no digest to give
      }
    }
  }
  tus.handle(req, res);
});
server.listen(port, host, () => {
  const addr = server.address();
  console.log(`listening ${addr.address} ${addr.port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
