// Test-only tus 1.0 server in front of object storage: @tus/server + @tus/s3-store on loopback, for
// tests/support/tus_servers.py. It keeps no state of its own: every upload's parts, its not yet
// part-sized tail (`<id>.part`), its metadata (`<id>.info`) and, once finished, its RFC 9530
// Repr-Digest (`<id>.repr-digest`) live in the bucket, so another instance (or this one restarted)
// resumes any upload. The upload-finished hook reads the finished object back from the bucket and
// hashes that: the digest is of what the store holds, not of the bytes this process saw. It must
// never listen on, nor talk to, anything but loopback.
// Usage: node server-s3.js --port N --s3-endpoint http://127.0.0.1:M --bucket NAME [--host 127.0.0.1]
import { createHash } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { S3 } from '@aws-sdk/client-s3';
import { S3Store } from '@tus/s3-store';
import { Server } from '@tus/server';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const LOOPBACK = ['127.0.0.1', '::1', '[::1]', 'localhost'];
const host = arg('host', '127.0.0.1');
const endpoint = arg('s3-endpoint', '');
const bucket = arg('bucket', '');
if (!LOOPBACK.includes(host) || !endpoint || !LOOPBACK.includes(new URL(endpoint).hostname) || !bucket) {
  console.error('refusing: listen on loopback and use an S3 endpoint on loopback, with a --bucket');
  process.exit(2);
}
const port = Number(arg('port', '0'));

// The test object store (moto) takes any key pair; naming them here keeps the server from picking
// up credentials from its environment or a profile.
const s3ClientConfig = {
  endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
};
const s3 = new S3(s3ClientConfig);
const digestKey = (id) => `${id}.repr-digest`;

function missing(error) {
  return ['NoSuchKey', 'NotFound'].includes(error?.name) || error?.$metadata?.httpStatusCode === 404;
}

// RFC 9530 Repr-Digest of the object as the bucket returns it: sha-256 and sha-512, in one read.
async function reprDigest(id) {
  const sha256 = createHash('sha256');
  const sha512 = createHash('sha512');
  const { Body } = await s3.getObject({ Bucket: bucket, Key: id });
  for await (const piece of Body) {
    sha256.update(piece);
    sha512.update(piece);
  }
  return `sha-256=:${sha256.digest('base64')}:, sha-512=:${sha512.digest('base64')}:`;
}

// Hash the finished object and keep the answer beside it in the bucket (for a later HEAD, which
// any instance may serve).
async function digestOfStored(id) {
  const value = await reprDigest(id);
  await s3.putObject({ Bucket: bucket, Key: digestKey(id), Body: value });
  return value;
}

// The digest for a HEAD: the one kept, or, when the object is finished but its digest was never
// kept (an instance stopped between completing the upload and its hook), computed now.
async function digestForHead(id) {
  try {
    const { Body } = await s3.getObject({ Bucket: bucket, Key: digestKey(id) });
    return (await Body.transformToString()).trim();
  } catch (error) {
    if (!missing(error)) throw error;
  }
  try {
    await s3.headObject({ Bucket: bucket, Key: id }); // exists only once the multipart upload completed
  } catch (error) {
    if (missing(error)) return null; // not finished: no digest to give
    throw error;
  }
  return digestOfStored(id);
}

const datastore = new S3Store({ s3ClientConfig: { ...s3ClientConfig, bucket } });
const tus = new Server({
  path: '/files',
  datastore,
  exposedHeaders: ['Repr-Digest'],
  // Upload finished (the store completed the multipart object): hash what the bucket holds.
  async onUploadFinish(_req, upload) {
    if (upload.size === 0) {
      // @tus/s3-store 2.0.7 finishes a zero-length upload at creation without completing its
      // multipart upload: no object, though tus calls it complete (tus-node-server PR #876).
      // An empty write completes it (with the one empty part S3 requires).
      await datastore.write(Readable.from([]), upload.id, 0);
    }
    return { headers: { 'Repr-Digest': await digestOfStored(upload.id) } };
  },
});

const server = http.createServer(async (req, res) => {
  if (req.method === 'HEAD') {
    const id = decodeURIComponent((req.url || '').split('?')[0].split('/').pop() || '');
    if (/^[A-Za-z0-9_-]{1,128}$/.test(id)) {
      try {
        const value = await digestForHead(id);
        // Set before the tus handler writes its head: Node merges these into writeHead's headers.
        if (value) res.setHeader('Repr-Digest', value);
      } catch (error) {
        console.error(`repr-digest of ${id} failed: ${error}`);
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
