"""A real RFC 3161 time-stamping authority on loopback: `openssl ts -reply` behind a tiny HTTP
server, for the trusted-time tests.

`Authority(directory, name)` makes a CA and a TSA certificate it signs (critical extended key
usage timeStamping, RFC 3161 section 2.3) with `openssl req`/`openssl x509`, and the `[tsa]`
configuration `openssl ts -reply` needs (openssl-ts(1), "CONFIGURATION FILE OPTIONS"). No
`certs` key and no `-chain`: the reply embeds the TSA's own certificate only, because OpenSSL
writes a set of several certificates unsorted, which strict DER parsers refuse.

`TsaServer(authority)` answers each POST of application/timestamp-query with the reply of one
`openssl ts -reply` run (application/timestamp-reply); `stop()` and `start()` take it away and
bring it back on the same port (a station offline from its TSA). This module imports nothing of
the agent; no shell is used.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_MAX_QUERY = 4096
_TSA_CONFIG = """\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""
_TSA_EXTENSIONS = """\
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
"""


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


class Authority:
    """A CA (`ca.pem`, the trust anchor a station is given) and the TSA it certifies."""

    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = directory / "ca.pem"
        key = directory / "ca.key"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", key, "-out", self.ca, "-days", "30",
                 "-subj", f"/CN={name} test CA",
                 "-addext", "basicConstraints=critical,CA:true",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
        csr = directory / "tsa.csr"
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", directory / "tsa.key", "-out", csr, "-subj", f"/CN={name} TSA")  # fmt: skip
        ext = directory / "tsa.ext"
        ext.write_text(_TSA_EXTENSIONS)
        _openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", key, "-CAcreateserial",
                 "-out", directory / "tsa.pem", "-days", "30", "-extfile", ext)  # fmt: skip
        (directory / "serial").write_text("01\n")
        self.config = directory / "tsa.cnf"
        self.config.write_text(_TSA_CONFIG.format(dir=directory))
        self.lock = threading.Lock()  # one `openssl ts -reply` at a time: it updates `serial`

    def reply(self, query: bytes) -> bytes:
        """The DER TimeStampResp `openssl ts -reply` gives for a DER TimeStampReq."""
        with self.lock, tempfile.TemporaryDirectory(dir=self.dir) as scratch:
            queryfile, out = Path(scratch, "query.tsq"), Path(scratch, "reply.tsr")
            queryfile.write_bytes(query)
            _openssl("ts", "-reply", "-config", self.config, "-queryfile", queryfile,
                     "-out", out)  # fmt: skip
            return out.read_bytes()


class TsaServer:
    """`authority` over HTTP on 127.0.0.1; `url` stays the same across stop() and start()."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority
        self.port = 0
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tsa"

    def start(self) -> TsaServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                kind = self.headers.get("Content-Type", "")
                if kind != "application/timestamp-query" or not 0 < length <= _MAX_QUERY:
                    self.send_error(400, "not a time-stamp query")
                    return
                query = self.rfile.read(length)
                try:
                    reply = owner.authority.reply(query)
                except subprocess.CalledProcessError:
                    self.send_error(500, "openssl ts -reply failed")
                    return
                owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> TsaServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
